// Hiding one observed modality per sample (modality_dropout.h).
#include "trainer/train/modality_dropout.h"

#include <ATen/ATen.h>

#include <vector>

#include "data_loader/combinations.h"

namespace flexmoe {

void HideModalities(double p, const StepKey& key, BatchTensors* batch) {
  if (p <= 0) return;
  const int64_t b = batch->combination.size(0);
  const int m_count = static_cast<int>(batch->features.size());
  if (b == 0 || m_count < 2) return;
  // Per sample: a keep mask (0 with probability p) and M normals whose largest among the
  // observed modalities picks the one hidden (uniform over them).
  const at::Tensor keep =
      KeyedTensor(key, RandomSite::kModalityDropout, 0, {1}, KeyedKind::kMask, p).contiguous();
  const at::Tensor pick =
      KeyedTensor(key, RandomSite::kModalityDropout, 1, {m_count}, KeyedKind::kNormal).contiguous();
  const Combinations combinations(m_count);
  batch->observed = batch->observed.clone();
  batch->combination = batch->combination.clone();
  auto observed = batch->observed.accessor<bool, 2>();
  auto combination = batch->combination.accessor<int64_t, 1>();
  std::vector<bool> copied(m_count, false);  // features are cloned before the first change
  const float* keep_of = keep.data_ptr<float>();
  const float* score = pick.data_ptr<float>();
  for (int64_t i = 0; i < b; ++i) {
    if (keep_of[i] != 0) continue;
    const uint32_t mask = combinations.Mask(static_cast<int>(combination[i]));
    if ((mask & (mask - 1)) == 0) continue;  // one modality: nothing to hide
    int hidden = -1;
    for (int m = 0; m < m_count; ++m) {
      if ((mask & (1u << m)) &&
          (hidden < 0 || score[i * m_count + m] > score[i * m_count + hidden])) {
        hidden = m;
      }
    }
    observed[i][hidden] = false;
    combination[i] = combinations.Index(mask & ~(1u << hidden));
    if (!copied[hidden]) {
      batch->features[hidden] = batch->features[hidden].clone();
      copied[hidden] = true;
    }
    batch->features[hidden][i].zero_();
  }
}

}  // namespace flexmoe
