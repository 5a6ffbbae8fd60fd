// Welford accumulation, mode tracking and the fit of fill values and scaling.
#include "data_loader/feature_stats.h"

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
