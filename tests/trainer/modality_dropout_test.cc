// training.modality_dropout (trainer/train/modality_dropout.h): which samples lose which
// modality, and that the batch stays consistent.
#include "trainer/train/modality_dropout.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "data_loader/combinations.h"

namespace flexmoe {
namespace {

// n samples over 3 modalities, cycling through every combination.
BatchTensors Batch(int64_t n) {
  const Combinations combinations(3);
  BatchTensors b;
  b.features = {at::ones({n, 2}), at::ones({n, 3}), at::ones({n, 1})};
  b.observed = at::zeros({n, 3}, at::kBool);
  b.combination = at::zeros({n}, at::kLong);
  b.label = at::zeros({n}, at::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % combinations.size());
    b.combination[i] = c;
    for (int m : combinations.Members(c)) b.observed[i][m] = true;
    for (int m = 0; m < 3; ++m) {
      if (!b.observed[i][m].item<bool>()) b.features[m][i].zero_();
    }
  }
  return b;
}

StepKey Key(int64_t n, int64_t step) {
  StepKey key{7, 0, step, {}};
  for (int64_t i = 0; i < n; ++i) key.samples.push_back(i);
  return key;
}

TEST(ModalityDropoutTest, HidesOneObservedModalityOfAboutPOfTheSamples) {
  const int64_t n = 7000;
  const Combinations combinations(3);
  BatchTensors original = Batch(n);
  BatchTensors b = original;  // shares the tensors
  HideModalities(0.3, Key(n, 1), &b);
  int64_t eligible = 0, hidden = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t before =
        combinations.Mask(static_cast<int>(original.combination[i].item<int64_t>()));
    const uint32_t after = combinations.Mask(static_cast<int>(b.combination[i].item<int64_t>()));
    for (int m = 0; m < 3; ++m) {
      // The flags, the features and the combination agree.
      ASSERT_EQ(b.observed[i][m].item<bool>(), static_cast<bool>(after & (1u << m)));
      if (!(after & (1u << m))) {
        ASSERT_EQ(b.features[m][i].abs().sum().item<float>(), 0.0f);
      }
    }
    if ((before & (before - 1)) == 0) {  // a single modality is never hidden
      ASSERT_EQ(after, before);
      continue;
    }
    ++eligible;
    if (after != before) {
      ++hidden;
      ASSERT_EQ(after & ~before, 0u);
      ASSERT_EQ(__builtin_popcount(before) - __builtin_popcount(after), 1);
    }
  }
  EXPECT_NEAR(static_cast<double>(hidden) / eligible, 0.3, 0.03);
  // The tensors it shared are not changed in place.
  const BatchTensors fresh = Batch(n);
  for (int m = 0; m < 3; ++m) EXPECT_TRUE(at::equal(original.features[m], fresh.features[m]));
  EXPECT_TRUE(at::equal(original.observed, fresh.observed));
  EXPECT_TRUE(at::equal(original.combination, fresh.combination));
}

TEST(ModalityDropoutTest, KeyedAndOffAtZero) {
  BatchTensors a = Batch(200), b = Batch(200), c = Batch(200), off = Batch(200);
  HideModalities(0.5, Key(200, 3), &a);
  HideModalities(0.5, Key(200, 3), &b);
  HideModalities(0.5, Key(200, 4), &c);
  EXPECT_TRUE(at::equal(a.combination, b.combination));
  EXPECT_FALSE(at::equal(a.combination, c.combination));
  HideModalities(0.0, Key(200, 3), &off);
  EXPECT_TRUE(at::equal(off.combination, Batch(200).combination));
}

}  // namespace
}  // namespace flexmoe
