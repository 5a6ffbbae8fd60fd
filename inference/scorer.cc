// Ensemble scoring and the as-if-missing attribution (scorer.h).
#include "inference/scorer.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>

#include "cluster/base/error.h"
#include "data_loader/combinations.h"
#include "trainer/train/evaluate.h"

namespace flexmoe {
namespace {

// The members' mean class probabilities for `t`, [B, K] float.
at::Tensor MeanProbabilities(const std::vector<LoadedModel*>& members, const BatchTensors& t,
                             bool calibrated) {
  at::Tensor sum;
  StepKey key;  // evaluation: no dropout, no noise
  for (LoadedModel* member : members) {
    at::Tensor logits = member->model->Forward(t, key, /*training=*/false).logits.to(at::kDouble);
    if (!member->logit_offset.empty()) {
      logits = logits + at::tensor(member->logit_offset, at::kDouble);
    }
    if (calibrated) {
      logits = logits / member->info.temperature;
      if (!member->info.calibration_bias.empty()) {
        logits = logits + at::tensor(member->info.calibration_bias, at::kDouble);
      }
    }
    at::Tensor p = at::softmax(logits, -1);
    sum = sum.defined() ? sum + p : p;
  }
  return (sum / static_cast<double>(members.size())).to(at::kFloat).contiguous();
}

}  // namespace

int ClassOfInterest(const float* probs, int num_classes) {
  if (num_classes == 2) return 1;
  int best = 0;
  for (int k = 1; k < num_classes; ++k) {
    if (probs[k] > probs[best]) best = k;
  }
  return best;
}

BatchScores ScoreBatch(const std::vector<LoadedModel*>& members, const DecodedBatch& batch,
                       const ScoreOptions& options) {
  if (members.empty()) Fail(ErrorCode::kInvalidArgument, "ScoreBatch: no model");
  torch::NoGradGuard no_grad;
  const LoadedModel& first = *members[0];
  const int k_count = first.num_classes(), m_count = first.num_modalities();
  const int64_t b = batch.size;
  BatchTensors t = ToTensors(batch, first.feature_sizes());
  at::Tensor probs = MeanProbabilities(members, t, options.calibrated);
  BatchScores scores;
  const float* p = probs.data_ptr<float>();
  scores.probs.assign(p, p + b * k_count);
  if (!options.explain) return scores;

  scores.attribution.assign(b * m_count, std::numeric_limits<float>::quiet_NaN());
  std::vector<int> interest(b);
  for (int64_t i = 0; i < b; ++i) interest[i] = ClassOfInterest(p + i * k_count, k_count);
  Combinations combinations(m_count);
  for (int m = 0; m < m_count; ++m) {
    // Every sample that has modality m and another one, as if it lacked m.
    BatchTensors without = t;
    without.observed = t.observed.clone();
    without.combination = t.combination.clone();
    auto observed = without.observed.accessor<bool, 2>();
    auto combination = without.combination.accessor<int64_t, 1>();
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < b; ++i) {
      const uint32_t mask = combinations.Mask(static_cast<int>(batch.combination[i]));
      if (!(mask & (1u << m)) || (mask & ~(1u << m)) == 0) continue;
      const int as_if = combinations.Index(mask & ~(1u << m));
      if (!first.trained_on(as_if)) continue;
      rows.push_back(i);
      observed[i][m] = false;
      combination[i] = as_if;
    }
    if (rows.empty()) continue;
    at::Tensor as_if = MeanProbabilities(members, without, options.calibrated);
    const float* q = as_if.data_ptr<float>();
    for (int64_t i : rows) {
      scores.attribution[i * m_count + m] =
          p[i * k_count + interest[i]] - q[i * k_count + interest[i]];
    }
  }
  return scores;
}

}  // namespace flexmoe
