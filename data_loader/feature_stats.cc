// Welford accumulation, mode tracking and the fit of fill values and scaling.
#include "data_loader/feature_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace flexmoe {

void FeatureAccumulator::Add(double x) {
  if (count_ == 0) {
    min_ = max_ = x;
  } else {
    min_ = std::min(min_, x);
    max_ = std::max(max_, x);
  }
  ++count_;
  double delta = x - mean_;
  mean_ += delta / static_cast<double>(count_);
  m2_ += delta * (x - mean_);
  if (integral_ && (std::floor(x) != x || std::fabs(x) > 1e15)) integral_ = false;
  if (integral_ && !histogram_overflow_) {
    ++histogram_[static_cast<int64_t>(x)];
    if (histogram_.size() > kMaxDistinct) {
      histogram_overflow_ = true;
      histogram_.clear();
    }
  }
}

double FeatureAccumulator::stddev() const {
  return count_ > 0 ? std::sqrt(m2_ / static_cast<double>(count_)) : 0.0;
}

double FeatureAccumulator::mode() const {
  int64_t best = 0;
  uint64_t best_count = 0;
  for (const auto& [value, n] : histogram_) {
    if (n > best_count || (n == best_count && value < best)) {
      best = value;
      best_count = n;
    }
  }
  return static_cast<double>(best);
}

void FitModality(const config::Modality& modality, const std::vector<FeatureAccumulator>& stats,
                 data::ModalityMeta* meta) {
  meta->set_scaling(config::Scaling_Name(modality.scaling()));
  for (const FeatureAccumulator& s : stats) {
    double fill = 0;
    if (s.count() > 0) {
      bool use_mode =
          s.integer_coded() && (modality.fill() == config::AUTO || modality.fill() == config::MODE);
      fill = use_mode ? s.mode() : s.mean();
    }
    double offset = 0;
    double scale = 1;
    if (s.count() > 0) {
      if (modality.scaling() == config::STANDARD) {
        offset = s.mean();
        scale = s.stddev() > 1e-12 ? 1.0 / s.stddev() : 1.0;
      } else if (modality.scaling() == config::MINMAX) {
        offset = 0.5 * (s.min() + s.max());
        double range = s.max() - s.min();
        scale = range > 1e-12 ? 2.0 / range : 1.0;
      }
    }
    meta->add_fill(static_cast<float>(fill));
    meta->add_offset(static_cast<float>(offset));
    meta->add_scale(static_cast<float>(scale));
    meta->add_integer_coded(s.integer_coded());
  }
}

void AddMissingIndicators(const std::vector<FeatureAccumulator>& stats, uint64_t observed,
                          data::ModalityMeta* meta) {
  const int inputs = meta->feature_names_size();
  for (int j = 0; j < inputs; ++j) {
    if (stats[j].count() >= observed) continue;
    meta->add_feature_names(meta->feature_names(j) + ":missing");
    meta->add_indicator_of(j);
    meta->add_fill(0);
    meta->add_offset(0);
    meta->add_scale(1);
    meta->add_integer_coded(true);
  }
}

void QuantileSample::Add(double x) {
  ++seen_;
  if (values_.size() < kCapacity) {
    values_.push_back(x);
    return;
  }
  // splitmix64: a uniform slot in [0, seen_); the value replaces it when it is in the sample.
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const uint64_t slot = z % seen_;
  if (slot < kCapacity) values_[slot] = x;
}

std::vector<double> QuantileSample::Edges(int bins) const {
  if (values_.empty()) return {};
  std::vector<double> sorted = values_;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> edges;
  const size_t n = sorted.size();
  for (int q = 0; q <= bins; ++q) {
    // The lower empirical quantile: the value at rank floor(q (n - 1) / bins).
    const double e = sorted[static_cast<size_t>(q) * (n - 1) / static_cast<size_t>(bins)];
    if (edges.empty() || e > edges.back()) edges.push_back(e);
  }
  edges.resize(bins + 1, edges.back());
  return edges;
}

void AddBinEdges(const std::vector<QuantileSample>& samples, int bins, data::ModalityMeta* meta) {
  const int n = InputFeatures(*meta);
  for (int j = 0; j < n; ++j) {
    std::vector<double> edges = samples[j].Edges(bins);
    if (edges.empty()) edges.assign(bins + 1, meta->fill(j));  // never observed: one point
    for (double e : edges) {
      meta->add_bin_edges(static_cast<float>((e - meta->offset(j)) * meta->scale(j)));
    }
  }
  for (int k = 0; k < meta->indicator_of_size(); ++k) {
    meta->add_bin_edges(0.0f);
    for (int t = 0; t < bins; ++t) meta->add_bin_edges(1.0f);
  }
}

void PreprocessModality(const data::ModalityMeta& fit, const double* raw, float* out) {
  const int n = InputFeatures(fit);
  for (int j = 0; j < n; ++j) {
    double v = raw[j];
    if (std::isnan(v)) v = fit.fill(j);
    out[j] = static_cast<float>((v - fit.offset(j)) * fit.scale(j));
  }
  for (int k = 0; k < fit.indicator_of_size(); ++k) {
    out[n + k] = std::isnan(raw[fit.indicator_of(k)]) ? 1.0f : 0.0f;
  }
}

}  // namespace flexmoe
