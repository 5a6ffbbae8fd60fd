// Balanced placements and their checks (expert_placement.h).
#include "cluster/base/expert_placement.h"

#include "cluster/base/error.h"

namespace flexmoe {

ExpertPlacement ExpertPlacement::Balanced(int64_t num_experts, int ranks) {
  ExpertPlacement placement;
  for (int64_t e = 0; e < num_experts; ++e) {
    placement.owner.push_back(static_cast<int>(e * ranks / num_experts));
  }
  return placement;
}

void ExpertPlacement::Check(int ranks) const {
  for (size_t e = 0; e < owner.size(); ++e) {
    if (owner[e] < 0 || owner[e] >= ranks) {
      Fail(ErrorCode::kInvalidArgument, "expert placement: expert ", e, " is placed on rank ",
           owner[e], " of a group of ", ranks);
    }
  }
}

std::vector<int64_t> ExpertPlacement::LocalExperts(int rank) const {
  std::vector<int64_t> local;
  for (size_t e = 0; e < owner.size(); ++e) {
    if (owner[e] == rank) local.push_back(static_cast<int64_t>(e));
  }
  return local;
}

PlacementMap PlacementMap::Balanced(const std::vector<int>& sparse_layers, int64_t num_experts,
                                    int ranks) {
  PlacementMap map;
  map.ranks = ranks;
  for (int layer : sparse_layers) map.layers[layer] = ExpertPlacement::Balanced(num_experts, ranks);
  return map;
}

const ExpertPlacement& PlacementMap::Layer(int layer) const {
  auto it = layers.find(layer);
  if (it == layers.end()) {
    Fail(ErrorCode::kInvalidArgument, "expert placement: no placement for sparse layer ", layer);
  }
  return it->second;
}

void PlacementMap::Check() const {
  for (const auto& [layer, placement] : layers) {
    try {
      placement.Check(ranks);
    } catch (const Error& e) {
      Fail(e.code(), "layer ", layer, ": ", e.what());
    }
  }
}

}  // namespace flexmoe
