// Per-feature statistics over the training split, and the fill and scaling they imply.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "proto/config.pb.h"
#include "proto/dataset.pb.h"

namespace flexmoe {

// Accumulates one feature's observed (non-missing) training values.
class FeatureAccumulator {
 public:
  void Add(double x);
  uint64_t count() const { return count_; }
  double mean() const { return mean_; }
  // Population standard deviation.
  double stddev() const;
  double min() const { return min_; }
  double max() const { return max_; }
  // All values integral and few distinct values: a coded column (genotype counts, flags).
  bool integer_coded() const { return integral_ && !histogram_overflow_ && count_ > 0; }
  // The most frequent value (smallest on ties); valid when integer_coded().
  double mode() const;

 private:
  static constexpr size_t kMaxDistinct = 1024;
  uint64_t count_ = 0;
  double mean_ = 0;
  double m2_ = 0;
  double min_ = 0;
  double max_ = 0;
  bool integral_ = true;
  bool histogram_overflow_ = false;
  std::unordered_map<int64_t, uint64_t> histogram_;
};

// A bounded uniform sample of one feature's observed training values (reservoir sampling
// with a fixed seed: the same input gives the same sample), for its quantiles.
class QuantileSample {
 public:
  static constexpr size_t kCapacity = 1 << 16;
  explicit QuantileSample(uint64_t seed = 0) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  void Add(double x);
  // The `bins` + 1 edges at the quantiles q / bins of the sample, deduplicated and padded
  // with the last edge to bins + 1 entries; empty when no value was added.
  std::vector<double> Edges(int bins) const;

 private:
  uint64_t seen_ = 0;
  uint64_t state_;
  std::vector<double> values_;
};

// Fills in `meta`'s fill/offset/scale for one modality from its features' accumulators.
void FitModality(const config::Modality& modality, const std::vector<FeatureAccumulator>& stats,
                 data::ModalityMeta* meta);

// Appends the missing-value indicators (data.missing_indicators) to a fitted modality: one
// per input feature that had a missing value among the `observed` training rows of the
// modality (stats[j].count() < observed).
void AddMissingIndicators(const std::vector<FeatureAccumulator>& stats, uint64_t observed,
                          data::ModalityMeta* meta);

// Appends every feature's quantile bin edges (ModalityMeta.bin_edges) to a fitted modality
// (after its indicators): samples[j] holds input feature j's observed training values; the
// edges are mapped into the prepared space by the feature's offset and scale.
void AddBinEdges(const std::vector<QuantileSample>& samples, int bins, data::ModalityMeta* meta);

// The input features of a prepared modality (its features without the indicators).
inline int InputFeatures(const data::ModalityMeta& fit) {
  return fit.feature_names_size() - fit.indicator_of_size();
}

// One observed modality's raw values (InputFeatures(fit) of them, NaN where missing) to
// its fit.feature_names_size() prepared features: a missing value becomes fit.fill[j],
// then (x - fit.offset[j]) * fit.scale[j]; the indicators follow. Preparation and
// prediction both use it.
void PreprocessModality(const data::ModalityMeta& fit, const double* raw, float* out);

}  // namespace flexmoe
