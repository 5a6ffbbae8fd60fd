// Placement from config and data (placement_policy.h).
#include "trainer/model/placement_policy.h"

#include <cstdio>

#include "data_loader/epoch_plan.h"
#include "trainer/model/model.h"

namespace flexmoe {

std::vector<double> ExpectedLoadOf(const config::Config& config, const PreparedDataset& prepared) {
  const config::ModelConfig& model = config.model();
  const double tokens_per_sample =
      static_cast<double>(config.data().modalities_size()) * model.patches();
  std::vector<double> tokens((1 << config.data().modalities_size()) - 1, 0.0);
  // The training split's samples per combination, from the prepared summary.
  const auto& splits = prepared.meta.summary().splits();
  if (!splits.empty()) {
    const auto& per_combination = splits[0].per_combination();
    for (int c = 0; c < per_combination.size() && c < static_cast<int>(tokens.size()); ++c) {
      tokens[c] += tokens_per_sample * static_cast<double>(per_combination[c]);
    }
  }
  return ExpectedExpertLoad(tokens, model.num_experts(), model.top_k());
}

PlacementMap MakePlacement(const config::Config& config, const PreparedDataset& prepared,
                           int ranks) {
  const std::vector<int> layers = FlexMoeModelImpl::SparseLayers(config.model());
  const int64_t experts = config.model().num_experts();
  PlacementMap map;
  map.ranks = ranks;
  std::vector<double> load;
  if (config.cluster().placement() == config::ClusterConfig::LOAD_AWARE) {
    load = ExpectedLoadOf(config, prepared);
  }
  for (int layer : layers) {
    switch (config.cluster().placement()) {
      case config::ClusterConfig::ROUND_ROBIN:
        map.layers[layer] = ExpertPlacement::RoundRobin(experts, ranks);
        break;
      case config::ClusterConfig::LOAD_AWARE:
        map.layers[layer] = ExpertPlacement::LoadAware(load, ranks);
        break;
      default:
        map.layers[layer] = ExpertPlacement::Balanced(experts, ranks);
    }
  }
  return map;
}

std::string DescribePlacement(const config::Config& config, const PreparedDataset& prepared,
                              const PlacementMap& placement) {
  const std::vector<double> load = ExpectedLoadOf(config, prepared);
  const ExpertPlacement contiguous =
      ExpertPlacement::Balanced(config.model().num_experts(), placement.ranks);
  const ExpertPlacement& first = placement.layers.begin()->second;
  char text[160];
  std::snprintf(text, sizeof(text), "%s over %d ranks: expected imbalance %.3f (CONTIGUOUS: %.3f)",
                config::ClusterConfig::Placement_Name(config.cluster().placement()).c_str(),
                placement.ranks, first.Imbalance(load, placement.ranks),
                contiguous.Imbalance(load, placement.ranks));
  return text;
}

}  // namespace flexmoe
