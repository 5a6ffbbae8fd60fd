// The parameters' exponential moving average (weight_average.h).
#include "trainer/train/weight_average.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace flexmoe {

double AverageDecay(double average_epochs, int64_t steps_per_epoch, int64_t step) {
  const double horizon = std::max(1.0, average_epochs * static_cast<double>(steps_per_epoch));
  const double t = static_cast<double>(step);
  return std::min(1.0 - 1.0 / horizon, (1.0 + t) / (10.0 + t));
}

void UpdateAverage(const std::vector<at::Tensor>& parameters, double decay,
                   std::vector<at::Tensor>* average) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters.size(); ++i) {
    // a + (p - a) * (1 - decay) = decay * a + (1 - decay) * p
    (*average)[i].lerp_(parameters[i].detach(), 1.0 - decay);
  }
}

AverageSwappedIn::AverageSwappedIn(const std::vector<at::Tensor>& parameters,
                                   const std::vector<at::Tensor>& average) {
  if (average.empty()) return;
  at::NoGradGuard no_grad;
  parameters_ = parameters;
  for (size_t i = 0; i < parameters.size(); ++i) {
    saved_.push_back(parameters[i].detach().clone());
    parameters_[i].detach().copy_(average[i]);
  }
}

AverageSwappedIn::~AverageSwappedIn() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].detach().copy_(saved_[i]);
}

}  // namespace flexmoe
