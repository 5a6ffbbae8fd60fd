// Expert placement as data (ARCHITECTURE.md "Formats"): for each sparse layer, which rank of
// the expert-parallel group owns each global expert. Torch-free, so that the coordinator,
// the checkpoint manifest and the launcher handle it without LibTorch. It is made when a job
// starts (by cluster.placement, or handed out by the coordinator), passed into the model,
// re-packed by measured load between epochs under LOAD_AWARE, and recorded in every
// checkpoint manifest; resuming at another world size re-shards by a new placement.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace flexmoe {

// One sparse layer. Never assumed contiguous: the exchange orders rows by (owner, expert).
struct ExpertPlacement {
  std::vector<int> owner;  // [E], each in [0, group size)

  // Expert e on rank e * ranks / E (balanced contiguous blocks).
  static ExpertPlacement Balanced(int64_t num_experts, int ranks);
  // Expert e on rank e % ranks.
  static ExpertPlacement RoundRobin(int64_t num_experts, int ranks);
  // Experts packed by expected load (`load[e]`, any unit): heaviest first onto the rank
  // with the least load so far (ties: the one with fewer experts, then the lower rank).
  // Every rank gets at least one expert when E >= ranks.
  static ExpertPlacement LoadAware(const std::vector<double>& load, int ranks);
  // The most loaded rank's load over the mean rank load (1 = perfectly even).
  double Imbalance(const std::vector<double>& load, int ranks) const;
  // Validates: every owner in [0, ranks). Throws kInvalidArgument otherwise.
  void Check(int ranks) const;
  std::vector<int64_t> LocalExperts(int rank) const;  // ascending global ids
  int64_t num_experts() const { return static_cast<int64_t>(owner.size()); }
  bool operator==(const ExpertPlacement& other) const { return owner == other.owner; }
};

// The expected tokens per expert of a sparse layer before any step runs: the S-Router
// sends combination c's tokens to expert c (one of its top-k), the other k-1 choices are
// taken as spread evenly. `combination_tokens[c]`: tokens of samples of combination c.
std::vector<double> ExpectedExpertLoad(const std::vector<double>& combination_tokens,
                                       int64_t num_experts, int64_t top_k);

// Every sparse layer of a model, keyed by its fusion-layer index, over `ranks` ranks.
struct PlacementMap {
  int ranks = 1;
  std::map<int, ExpertPlacement> layers;

  // Balanced placements of `num_experts` experts for each of `sparse_layers`.
  static PlacementMap Balanced(const std::vector<int>& sparse_layers, int64_t num_experts,
                               int ranks);
  // Throws kInvalidArgument naming the layer when `layer` has no placement, or (Check)
  // when any owner lies outside [0, ranks).
  const ExpertPlacement& Layer(int layer) const;
  void Check() const;
  bool operator==(const PlacementMap& other) const {
    return ranks == other.ranks && layers == other.layers;
  }
};

// A LOAD_AWARE re-pack (cluster.placement): each sparse layer is packed from its own measured
// loads (`loads[layer][e]`; the S-Router and each layer's router send different tokens to
// each expert, so layers may need different placements), and a layer moves only when its
// new imbalance is below 0.98 of its current one (moving experts costs a checkpoint round).
struct Repacked {
  PlacementMap placement;  // the current placement with the moved layers replaced
  std::vector<int> moved;  // the layers that moved
  // The largest imbalance over the layers, under the current and the new placement.
  double imbalance_before = 1, imbalance_after = 1;
};
Repacked RepackByLoad(const PlacementMap& current, const std::map<int, std::vector<double>>& loads);

}  // namespace flexmoe
