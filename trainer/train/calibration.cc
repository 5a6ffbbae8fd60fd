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

std::vector<double> PriorCorrection(const std::vector<double>& class_weights) {
  std::vector<double> offsets;
  for (double w : class_weights) {
    if (!(w > 0)) Fail(ErrorCode::kInvalidArgument, "class weight ", w, " is not positive");
    offsets.push_back(-std::log(w));
  }
  return offsets;
}

namespace {

// Row i's calibrated scores a * z_k + b_k into `s`; returns log sum exp.
double Scores(const double* z, int k_count, double a, const std::vector<double>& b, double* s) {
  double top = -std::numeric_limits<double>::infinity();
  for (int k = 0; k < k_count; ++k) {
    s[k] = a * z[k] + (b.empty() ? 0.0 : b[k]);
    top = std::max(top, s[k]);
  }
  double sum = 0;
  for (int k = 0; k < k_count; ++k) sum += std::exp(s[k] - top);
  return top + std::log(sum);
}

// Solves H x = g (n x n, symmetric positive semi-definite, row-major) by Gaussian
// elimination with partial pivoting and a small ridge; returns x.
std::vector<double> Solve(std::vector<double> h, std::vector<double> g, int n) {
  for (int i = 0; i < n; ++i) h[i * n + i] += 1e-9 * (1 + std::fabs(h[i * n + i]));
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int r = col + 1; r < n; ++r) {
      if (std::fabs(h[r * n + col]) > std::fabs(h[pivot * n + col])) pivot = r;
    }
    for (int c = 0; c < n; ++c) std::swap(h[col * n + c], h[pivot * n + c]);
    std::swap(g[col], g[pivot]);
    const double d = h[col * n + col];
    if (std::fabs(d) < 1e-300) continue;
    for (int r = col + 1; r < n; ++r) {
      const double f = h[r * n + col] / d;
      for (int c = col; c < n; ++c) h[r * n + c] -= f * h[col * n + c];
      g[r] -= f * g[col];
    }
  }
  std::vector<double> x(n, 0);
  for (int r = n - 1; r >= 0; --r) {
    double v = g[r];
    for (int c = r + 1; c < n; ++c) v -= h[r * n + c] * x[c];
    x[r] = std::fabs(h[r * n + r]) < 1e-300 ? 0 : v / h[r * n + r];
  }
  return x;
}

// The fitted objective: the summed NLL under scores a z + b plus the prior
// kCalibrationPrior / 2 ((a - 1)^2 + sum_k (b_k - centre_k)^2) (without a's term when a is
// fixed).
double Objective(const std::vector<double>& z, const std::vector<int>& labels, int k_count,
                 double a, const std::vector<double>& b, const std::vector<double>& centre,
                 bool fixed_a) {
  std::vector<double> s(k_count);
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    total += Scores(&z[i * k_count], k_count, a, b, s.data()) - s[labels[i]];
  }
  double prior = fixed_a ? 0 : (a - 1) * (a - 1);
  for (int k = 1; k < k_count; ++k) prior += (b[k] - centre[k]) * (b[k] - centre[k]);
  return total + kCalibrationPrior / 2 * prior;
}

// The objective's gradient g [K] and Hessian h [K x K] over (a, b_1..b_K-1): a multinomial
// logistic regression whose class k has the parameter features x_k = (z_k, e_k).
void Derivatives(const std::vector<double>& z, const std::vector<int>& labels, int k_count,
                 double a, const std::vector<double>& b, const std::vector<double>& centre,
                 std::vector<double>* g, std::vector<double>* h) {
  g->assign(k_count, 0.0);
  h->assign(static_cast<size_t>(k_count) * k_count, 0.0);
  std::vector<double> s(k_count), p(k_count), mean(k_count);
  for (size_t i = 0; i < labels.size(); ++i) {
    const double* zi = &z[i * k_count];
    const double lse = Scores(zi, k_count, a, b, s.data());
    std::fill(mean.begin(), mean.end(), 0.0);  // sum_k p_k x_k
    for (int k = 0; k < k_count; ++k) {
      p[k] = std::exp(s[k] - lse);
      mean[0] += p[k] * zi[k];
      if (k > 0) mean[k] += p[k];
    }
    for (int k = 0; k < k_count; ++k) {
      const double y = labels[i] == k ? 1.0 : 0.0;
      (*g)[0] += (p[k] - y) * zi[k];
      if (k > 0) (*g)[k] += p[k] - y;
      (*h)[0] += p[k] * zi[k] * zi[k];  // sum_k p_k x_k x_k^T
      if (k > 0) {
        (*h)[k] += p[k] * zi[k];
        (*h)[k * k_count] += p[k] * zi[k];
        (*h)[k * k_count + k] += p[k];
      }
    }
    for (int r = 0; r < k_count; ++r) {
      for (int c = 0; c < k_count; ++c) (*h)[r * k_count + c] -= mean[r] * mean[c];
    }
  }
  (*g)[0] += kCalibrationPrior * (a - 1);
  (*h)[0] += kCalibrationPrior;
  for (int k = 1; k < k_count; ++k) {
    (*g)[k] += kCalibrationPrior * (b[k] - centre[k]);
    (*h)[k * k_count + k] += kCalibrationPrior;
  }
}

// Newton's method on Objective over (a, b_1..b_K-1), b_0 = 0, from (a, centre), halving a
// step until it does not make the objective worse; with `fixed_a`, over the biases only.
// Returns (a, b).
std::pair<double, std::vector<double>> Newton(const std::vector<double>& z,
                                              const std::vector<int>& labels, int k_count, double a,
                                              const std::vector<double>& centre, bool fixed_a) {
  std::vector<double> b = centre, g, h;
  const int first = fixed_a ? 1 : 0;  // parameter 0 is a
  const int n = k_count - first;      // parameters solved for
  double current = Objective(z, labels, k_count, a, b, centre, fixed_a);
  for (int iteration = 0; iteration < 100; ++iteration) {
    Derivatives(z, labels, k_count, a, b, centre, &g, &h);
    std::vector<double> hs(static_cast<size_t>(n) * n), gs(n);
    for (int r = 0; r < n; ++r) {
      gs[r] = g[r + first];
      for (int c = 0; c < n; ++c) hs[r * n + c] = h[(r + first) * k_count + c + first];
    }
    const std::vector<double> step = Solve(hs, gs, n);
    bool improved = false;
    double scale = 1;
    for (int halving = 0; halving < 40 && !improved; ++halving, scale /= 2) {
      double a_try = a;
      std::vector<double> b_try = b;
      for (int r = 0; r < n; ++r) (r + first == 0 ? a_try : b_try[r + first]) -= scale * step[r];
      const double value = Objective(z, labels, k_count, a_try, b_try, centre, fixed_a);
      if (value > current) continue;
      improved = current - value > 1e-12 * (1 + std::fabs(current));
      a = a_try, b = b_try, current = value;
      if (!improved) return {a, b};
    }
    if (!improved) break;
  }
  return {a, b};
}

}  // namespace

std::vector<float> Calibrate(const std::vector<double>& log_probs, int num_classes,
                             const Calibration& calibration) {
  CheckShape(log_probs.size(), log_probs.size() / std::max(num_classes, 1), num_classes,
             "Calibrate");
  std::vector<float> probs(log_probs.size());
  std::vector<double> s(num_classes);
  for (size_t row = 0; row < log_probs.size(); row += num_classes) {
    const double lse = Scores(&log_probs[row], num_classes, 1.0 / calibration.temperature,
                              calibration.bias, s.data());
    for (int k = 0; k < num_classes; ++k) probs[row + k] = static_cast<float>(std::exp(s[k] - lse));
  }
  return probs;
}

double CalibrationNll(const std::vector<double>& log_probs, const std::vector<int>& labels,
                      int num_classes, const Calibration& calibration) {
  CheckShape(log_probs.size(), labels.size(), num_classes, "CalibrationNll");
  if (labels.empty()) return 0;
  std::vector<double> s(num_classes);
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    total += Scores(&log_probs[i * num_classes], num_classes, 1.0 / calibration.temperature,
                    calibration.bias, s.data()) -
             s[labels[i]];
  }
  return total / static_cast<double>(labels.size());
}

std::vector<double> TrainingClassShares(const data::DatasetMeta& meta, int num_classes) {
  const auto& splits = meta.summary().splits();
  if (splits.empty() || splits[0].per_class_size() != num_classes) return {};
  double total = 0;
  for (uint64_t n : splits[0].per_class()) total += static_cast<double>(n);
  if (total <= 0) return {};
  std::vector<double> shares;
  for (uint64_t n : splits[0].per_class()) shares.push_back(static_cast<double>(n) / total);
  return shares;
}

std::vector<double> PrevalenceBias(const std::vector<double>& log_probs, int num_classes,
                                   const std::vector<double>& class_shares) {
  std::vector<double> bias(std::max(num_classes, 0), 0.0);
  const size_t rows = log_probs.size() / std::max(num_classes, 1);
  if (class_shares.empty() || rows == 0) return bias;
  CheckShape(log_probs.size(), rows, num_classes, "PrevalenceBias");
  if (class_shares.size() != static_cast<size_t>(num_classes)) {
    Fail(ErrorCode::kInvalidArgument, "PrevalenceBias: ", class_shares.size(), " class shares for ",
         num_classes, " classes");
  }
  for (double share : class_shares) {
    if (!(share > 0)) return bias;  // a class never seen in training: no centre to match
  }
  // Fixed point b_k += log(share_k / mean_k): the mean moves towards the shares each round
  // (it is the gradient step of a convex problem whose minimum is the match).
  std::vector<double> s(num_classes), mean(num_classes);
  for (int round = 0; round < 500; ++round) {
    std::fill(mean.begin(), mean.end(), 0.0);
    for (size_t row = 0; row < log_probs.size(); row += num_classes) {
      const double lse = Scores(&log_probs[row], num_classes, 1.0, bias, s.data());
      for (int k = 0; k < num_classes; ++k) mean[k] += std::exp(s[k] - lse) / rows;
    }
    double worst = 0;
    for (int k = 0; k < num_classes; ++k) {
      worst = std::max(worst, std::fabs(mean[k] - class_shares[k]));
      bias[k] += std::log(class_shares[k] / std::max(mean[k], 1e-300));
    }
    for (int k = num_classes - 1; k >= 0; --k) bias[k] -= bias[0];
    if (worst < 1e-9) break;
  }
  return bias;
}

Calibration FitCalibration(const std::vector<double>& log_probs, const std::vector<int>& labels,
                           int num_classes, const std::vector<double>& class_shares) {
  CheckShape(log_probs.size(), labels.size(), num_classes, "FitCalibration");
  Calibration calibration;
  if (labels.empty() || num_classes < 2) return calibration;
  const std::vector<double> centre = PrevalenceBias(log_probs, num_classes, class_shares);
  auto [a, b] = Newton(log_probs, labels, num_classes, 1.0, centre, false);
  const double clamped = std::clamp(a, 1.0 / 20, 1.0 / 0.05);
  if (clamped != a || !std::isfinite(a)) {
    a = std::isfinite(a) ? clamped : 1.0;
    b = Newton(log_probs, labels, num_classes, a, centre, true).second;
  }
  calibration.temperature = 1.0 / a;
  calibration.bias = b;
  return calibration;
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
