// Temperature scaling and reliability (calibration.h).
#include "trainer/train/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cluster/base/error.h"
#include "trainer/train/metrics.h"

namespace flexmoe {
namespace {

void CheckShape(size_t values, size_t rows, int num_classes, const char* what) {
  if (num_classes < 1 || values != rows * static_cast<size_t>(num_classes)) {
    Fail(ErrorCode::kInvalidArgument, what, ": ", values, " values for ", rows, " rows of ",
         num_classes, " classes");
  }
}

}  // namespace

std::vector<float> SoftmaxWithTemperature(const std::vector<double>& log_probs, int num_classes,
                                          double temperature) {
  CheckShape(log_probs.size(), log_probs.size() / std::max(num_classes, 1), num_classes,
             "SoftmaxWithTemperature");
  std::vector<float> probs(log_probs.size());
  for (size_t row = 0; row < log_probs.size(); row += num_classes) {
    double top = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < num_classes; ++k) top = std::max(top, log_probs[row + k] / temperature);
    double sum = 0;
    for (int k = 0; k < num_classes; ++k) sum += std::exp(log_probs[row + k] / temperature - top);
    for (int k = 0; k < num_classes; ++k) {
      probs[row + k] = static_cast<float>(std::exp(log_probs[row + k] / temperature - top) / sum);
    }
  }
  return probs;
}

double TemperatureNll(const std::vector<double>& log_probs, const std::vector<int>& labels,
                      int num_classes, double temperature) {
  CheckShape(log_probs.size(), labels.size(), num_classes, "TemperatureNll");
  if (labels.empty()) return 0;
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double* row = &log_probs[i * num_classes];
    double top = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < num_classes; ++k) top = std::max(top, row[k] / temperature);
    double sum = 0;
    for (int k = 0; k < num_classes; ++k) sum += std::exp(row[k] / temperature - top);
    total += top + std::log(sum) - row[labels[i]] / temperature;
  }
  return total / static_cast<double>(labels.size());
}

double FitTemperature(const std::vector<double>& log_probs, const std::vector<int>& labels,
                      int num_classes) {
  if (labels.empty()) return 1.0;
  auto nll = [&](double log_t) {
    return TemperatureNll(log_probs, labels, num_classes, std::exp(log_t));
  };
  const double ratio = (std::sqrt(5.0) - 1) / 2;
  double a = std::log(0.05), b = std::log(20.0);
  double c = b - ratio * (b - a), d = a + ratio * (b - a);
  double fc = nll(c), fd = nll(d);
  for (int i = 0; i < 80 && b - a > 1e-7; ++i) {
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - ratio * (b - a), fc = nll(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + ratio * (b - a), fd = nll(d);
    }
  }
  return std::exp((a + b) / 2);
}

Reliability ComputeReliability(const std::vector<int>& labels, const std::vector<float>& probs,
                               int num_classes, int num_bins) {
  CheckShape(probs.size(), labels.size(), num_classes, "ComputeReliability");
  Reliability result;
  result.bins.resize(num_bins);
  for (int b = 0; b < num_bins; ++b) {
    result.bins[b].lower = static_cast<double>(b) / num_bins;
    result.bins[b].upper = static_cast<double>(b + 1) / num_bins;
  }
  const std::vector<int> predicted = PredictArgmax(probs, num_classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    const double confidence = probs[i * num_classes + predicted[i]];
    int b = std::clamp(static_cast<int>(confidence * num_bins), 0, num_bins - 1);
    ReliabilityBin& bin = result.bins[b];
    ++bin.count;
    bin.confidence += confidence;
    bin.accuracy += predicted[i] == labels[i] ? 1.0 : 0.0;
  }
  double ece = 0;
  for (ReliabilityBin& bin : result.bins) {
    if (bin.count == 0) continue;
    bin.confidence /= bin.count;
    bin.accuracy /= bin.count;
    ece += bin.count * std::abs(bin.accuracy - bin.confidence);
  }
  result.ece = labels.empty() ? std::nan("") : ece / static_cast<double>(labels.size());
  return result;
}

std::vector<Reliability> ComputeGroupedReliability(const std::vector<int>& labels,
                                                   const std::vector<float>& probs, int num_classes,
                                                   const std::vector<int>& group_ids,
                                                   int num_groups, int num_bins) {
  CheckShape(probs.size(), labels.size(), num_classes, "ComputeGroupedReliability");
  std::vector<std::vector<int>> group_labels(num_groups);
  std::vector<std::vector<float>> group_probs(num_groups);
  for (size_t i = 0; i < labels.size(); ++i) {
    const int g = group_ids[i];
    if (g < 0 || g >= num_groups) {
      Fail(ErrorCode::kInvalidArgument, "ComputeGroupedReliability: group ", g, " of row ", i,
           " is not in [0, ", num_groups, ")");
    }
    group_labels[g].push_back(labels[i]);
    group_probs[g].insert(group_probs[g].end(), probs.begin() + i * num_classes,
                          probs.begin() + (i + 1) * num_classes);
  }
  std::vector<Reliability> result;
  for (int g = 0; g < num_groups; ++g) {
    result.push_back(ComputeReliability(group_labels[g], group_probs[g], num_classes, num_bins));
  }
  return result;
}

}  // namespace flexmoe
