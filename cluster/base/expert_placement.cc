// Balanced placements and their checks (expert_placement.h).
#include "cluster/base/expert_placement.h"

#include <algorithm>

#include "cluster/base/error.h"

namespace flexmoe {

ExpertPlacement ExpertPlacement::Balanced(int64_t num_experts, int ranks) {
  ExpertPlacement placement;
  for (int64_t e = 0; e < num_experts; ++e) {
    placement.owner.push_back(static_cast<int>(e * ranks / num_experts));
  }
  return placement;
}

ExpertPlacement ExpertPlacement::RoundRobin(int64_t num_experts, int ranks) {
  ExpertPlacement placement;
  for (int64_t e = 0; e < num_experts; ++e) placement.owner.push_back(static_cast<int>(e % ranks));
  return placement;
}

ExpertPlacement ExpertPlacement::LoadAware(const std::vector<double>& load, int ranks) {
  std::vector<int64_t> order(load.size());
  for (size_t e = 0; e < order.size(); ++e) order[e] = static_cast<int64_t>(e);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return load[a] > load[b]; });
  std::vector<double> rank_load(ranks, 0.0);
  std::vector<int> rank_experts(ranks, 0);
  ExpertPlacement placement;
  placement.owner.assign(load.size(), 0);
  for (int64_t e : order) {
    int best = 0;
    for (int r = 1; r < ranks; ++r) {
      if (rank_load[r] < rank_load[best] ||
          (rank_load[r] == rank_load[best] && rank_experts[r] < rank_experts[best])) {
        best = r;
      }
    }
    placement.owner[e] = best;
    rank_load[best] += load[e];
    ++rank_experts[best];
  }
  return placement;
}

double ExpertPlacement::Imbalance(const std::vector<double>& load, int ranks) const {
  std::vector<double> rank_load(ranks, 0.0);
  double total = 0;
  for (size_t e = 0; e < owner.size() && e < load.size(); ++e) {
    rank_load[owner[e]] += load[e];
    total += load[e];
  }
  if (total <= 0) return 1.0;
  return *std::max_element(rank_load.begin(), rank_load.end()) / (total / ranks);
}

std::vector<double> ExpectedExpertLoad(const std::vector<double>& combination_tokens,
                                       int64_t num_experts, int64_t top_k) {
  double total = 0;
  for (double t : combination_tokens) total += t;
  std::vector<double> load(num_experts, total * static_cast<double>(top_k - 1) / num_experts);
  for (size_t c = 0; c < combination_tokens.size() && static_cast<int64_t>(c) < num_experts; ++c) {
    load[c] += combination_tokens[c];
  }
  return load;
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

Repacked RepackByLoad(const PlacementMap& current,
                      const std::map<int, std::vector<double>>& loads) {
  Repacked out;
  out.placement = current;
  for (auto& [layer, placement] : out.placement.layers) {
    auto it = loads.find(layer);
    if (it == loads.end()) continue;
    const std::vector<double>& load = it->second;
    const ExpertPlacement next = ExpertPlacement::LoadAware(load, current.ranks);
    const double before = placement.Imbalance(load, current.ranks);
    const double after = next.Imbalance(load, current.ranks);
    out.imbalance_before = std::max(out.imbalance_before, before);
    if (after < 0.98 * before) {
      placement = next;
      out.moved.push_back(layer);
    }
    out.imbalance_after = std::max(out.imbalance_after, placement.Imbalance(load, current.ranks));
  }
  return out;
}

}  // namespace flexmoe
