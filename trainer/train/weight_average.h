// training.average_epochs: an exponential moving average of the parameters (Polyak
// averaging), updated after every optimizer step, and swapped in for validation, selection
// and the export (proto/config.proto).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace flexmoe {

// The average's decay at optimizer step `step` (1 for the first update): 1 - 1 /
// (average_epochs * steps_per_epoch), no more than (1 + step) / (10 + step).
double AverageDecay(double average_epochs, int64_t steps_per_epoch, int64_t step);

// average[i] = decay * average[i] + (1 - decay) * parameters[i], in place.
void UpdateAverage(const std::vector<at::Tensor>& parameters, double decay,
                   std::vector<at::Tensor>* average);

// While it lives, the parameters hold the average's values; the parameters' own values come
// back when it ends. Nothing happens when `average` is empty.
class AverageSwappedIn {
 public:
  AverageSwappedIn(const std::vector<at::Tensor>& parameters,
                   const std::vector<at::Tensor>& average);
  ~AverageSwappedIn();
  AverageSwappedIn(const AverageSwappedIn&) = delete;
  AverageSwappedIn& operator=(const AverageSwappedIn&) = delete;

 private:
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> saved_;
};

}  // namespace flexmoe
