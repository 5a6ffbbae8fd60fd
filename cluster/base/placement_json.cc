// An expert placement as JSON (placement_json.h).
#include "cluster/base/placement_json.h"

#include "cluster/base/error.h"

namespace flexmoe {

nlohmann::json PlacementToJson(const PlacementMap& placement) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [layer, p] : placement.layers) {
    layers.push_back({{"layer", layer}, {"owner", p.owner}});
  }
  return {{"ranks", placement.ranks}, {"layers", layers}};
}

PlacementMap PlacementFromJson(const nlohmann::json& json, const std::string& source) {
  PlacementMap map;
  try {
    map.ranks = json.at("ranks").get<int>();
    for (const nlohmann::json& layer : json.at("layers")) {
      map.layers[layer.at("layer").get<int>()].owner = layer.at("owner").get<std::vector<int>>();
    }
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kDataLoss, source, ": placement: ", e.what());
  }
  if (map.ranks < 1) Fail(ErrorCode::kDataLoss, source, ": placement over ", map.ranks, " ranks");
  try {
    map.Check();
  } catch (const Error& e) {
    Fail(ErrorCode::kDataLoss, source, ": ", e.what());
  }
  return map;
}

}  // namespace flexmoe
