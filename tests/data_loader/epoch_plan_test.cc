// Epoch orders: warm-up sorted by observed-modality count (most first, stable), shuffled
// epochs a deterministic permutation that changes from epoch to epoch.
#include "data_loader/epoch_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace flexmoe {
namespace {

TEST(EpochPlanTest, WarmupIsAStableSortByModalityCountDescending) {
  std::vector<uint32_t> samples = {0, 1, 2, 3, 4, 5, 6};
  std::vector<int> count = {1, 3, 2, 3, 1, 2, 4};
  auto order = EpochOrder(samples, count, 1, 0, EpochPhase::kWarmup);
  EXPECT_EQ(order, (std::vector<uint32_t>{6, 1, 3, 2, 5, 0, 4}));
  EXPECT_EQ(order, EpochOrder(samples, count, 99, 3, EpochPhase::kWarmup));
}

TEST(EpochPlanTest, ShuffledEpochsArePermutationsKeyedBySeedAndEpoch) {
  std::vector<uint32_t> samples(100);
  for (uint32_t i = 0; i < 100; ++i) samples[i] = i * 2;
  std::vector<int> count(200, 1);
  auto a = EpochOrder(samples, count, 1, 5, EpochPhase::kShuffled);
  auto b = EpochOrder(samples, count, 1, 5, EpochPhase::kShuffled);
  auto c = EpochOrder(samples, count, 1, 6, EpochPhase::kShuffled);
  auto d = EpochOrder(samples, count, 2, 5, EpochPhase::kShuffled);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_NE(a, samples);
  std::sort(a.begin(), a.end());
  EXPECT_EQ(a, samples);
}

TEST(EpochPlanTest, BatchesCoverTheOrderWithAShortLastBatch) {
  std::vector<uint32_t> order = {5, 4, 3, 2, 1, 0, 9};
  auto batches = Batches(order, 3);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2], (std::vector<uint32_t>{9}));
  EXPECT_EQ(batches[0], (std::vector<uint32_t>{5, 4, 3}));
}

}  // namespace
}  // namespace flexmoe
