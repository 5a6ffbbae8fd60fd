// Expert placements: contiguous blocks, round robin, load-aware packing and the imbalance
// measure, worked by hand.
#include "cluster/base/expert_placement.h"

#include <gtest/gtest.h>

namespace flexmoe {
namespace {

TEST(ExpertPlacementTest, ContiguousAndRoundRobin) {
  EXPECT_EQ(ExpertPlacement::Balanced(6, 3).owner, (std::vector<int>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(ExpertPlacement::RoundRobin(6, 4).owner, (std::vector<int>{0, 1, 2, 3, 0, 1}));
  EXPECT_EQ(ExpertPlacement::Balanced(5, 3).LocalExperts(2), (std::vector<int64_t>{4}));
}

TEST(ExpertPlacementTest, LoadAwarePacksTheHotExpertsApart) {
  // Experts 0 and 1 are hot: contiguous blocks put both on rank 0.
  const std::vector<double> load = {10, 10, 1, 1, 1, 1};
  const ExpertPlacement contiguous = ExpertPlacement::Balanced(6, 2);
  EXPECT_DOUBLE_EQ(contiguous.Imbalance(load, 2), 21.0 / 12.0);
  const ExpertPlacement packed = ExpertPlacement::LoadAware(load, 2);
  EXPECT_NE(packed.owner[0], packed.owner[1]);
  EXPECT_DOUBLE_EQ(packed.Imbalance(load, 2), 1.0);
  // Every rank gets an expert, even with no load at all.
  const ExpertPlacement idle = ExpertPlacement::LoadAware(std::vector<double>(4, 0.0), 4);
  for (int r = 0; r < 4; ++r) EXPECT_EQ(idle.LocalExperts(r).size(), 1u) << r;
}

TEST(ExpertPlacementTest, ExpectedLoadFollowsTheCombinations) {
  // 2 combinations with 30 and 10 tokens, 4 experts, top-2: each expert gets 40 * 1/4 from
  // the other choice, and expert c the tokens of combination c.
  EXPECT_EQ(ExpectedExpertLoad({30, 10}, 4, 2), (std::vector<double>{40, 20, 10, 10}));
}

}  // namespace
}  // namespace flexmoe
