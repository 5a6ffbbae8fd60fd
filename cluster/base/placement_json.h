// The one JSON form of an expert placement, used by every artifact that records one (the
// checkpoint manifest, job.json, the "repacked" field of epoch records):
//   {"ranks": R, "layers": [{"layer": L, "owner": [rank of expert 0, ...]}, ...]}
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cluster/base/expert_placement.h"

namespace flexmoe {

nlohmann::json PlacementToJson(const PlacementMap& placement);
// Checked (PlacementMap::Check); kDataLoss naming `source` when it is not a placement.
PlacementMap PlacementFromJson(const nlohmann::json& json, const std::string& source);

}  // namespace flexmoe
