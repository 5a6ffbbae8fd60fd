// Expert placements: contiguous blocks, round robin, load-aware packing and the imbalance
// measure, worked by hand.
#include "cluster/base/expert_placement.h"

#include <gtest/gtest.h>

#include "cluster/base/error.h"
#include "cluster/base/placement_json.h"

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

// Two sparse layers whose routers send their tokens to different experts: each layer is
// re-packed from its own loads, so the layers end with different placements; a layer whose
// placement is already even does not move.
TEST(ExpertPlacementTest, RepackGivesEachLayerItsOwnPlacement) {
  const PlacementMap current = PlacementMap::Balanced({1, 3, 5}, 6, 2);
  std::map<int, std::vector<double>> loads;
  loads[1] = {10, 10, 1, 1, 1, 1};  // experts 0 and 1 hot: both on rank 0
  loads[3] = {1, 1, 1, 10, 10, 1};  // experts 3 and 4 hot: both on rank 1
  loads[5] = {5, 1, 1, 1, 1, 5};    // already even: 7 and 7
  const Repacked r = RepackByLoad(current, loads);
  EXPECT_EQ(r.moved, (std::vector<int>{1, 3}));
  const ExpertPlacement& first = r.placement.Layer(1);
  const ExpertPlacement& second = r.placement.Layer(3);
  EXPECT_NE(first.owner[0], first.owner[1]);
  EXPECT_NE(second.owner[3], second.owner[4]);
  EXPECT_NE(first.owner, second.owner);
  EXPECT_EQ(r.placement.Layer(5), current.Layer(5));
  EXPECT_DOUBLE_EQ(r.imbalance_before, 21.0 / 12.0);
  EXPECT_DOUBLE_EQ(r.imbalance_after, 1.0);
  // Loads that need no move leave the placement as it is.
  const Repacked again = RepackByLoad(r.placement, loads);
  EXPECT_TRUE(again.moved.empty());
  EXPECT_EQ(again.placement, r.placement);
}

TEST(ExpertPlacementTest, JsonRoundTripAndRefusals) {
  PlacementMap map = PlacementMap::Balanced({0, 2}, 4, 2);
  map.layers[2] = ExpertPlacement::RoundRobin(4, 2);
  EXPECT_EQ(PlacementFromJson(PlacementToJson(map), "test"), map);
  nlohmann::json bad = PlacementToJson(map);
  bad["layers"][1]["owner"][0] = 7;  // no rank 7 in a group of 2
  try {
    PlacementFromJson(bad, "job.json");
    ADD_FAILURE() << "accepted an owner outside the group";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("job.json"), std::string::npos) << e.what();
  }
  try {
    PlacementFromJson({{"ranks", 2}}, "manifest.json");
    ADD_FAILURE() << "accepted a placement without layers";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  }
}

}  // namespace
}  // namespace flexmoe
