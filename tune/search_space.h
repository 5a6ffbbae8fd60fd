// The search space of `flexmoe tune`: loading and checking a Space file (proto/tune.proto)
// and turning it into trials, each a list of config overrides ("model.hidden_dim=64").
#pragma once

#include <string>
#include <vector>

#include "proto/tune.pb.h"

namespace flexmoe {

// Reads and checks a space file: kInvalidArgument naming the file, line or param.
tune::Space LoadSpace(const std::string& path);

struct Trial {
  int number = 0;                      // 1, 2, ... in the order they were drawn
  std::vector<std::string> overrides;  // "field=value", one per param, in the space's order
};

// Grid: every combination of the params' values, the first param varying slowest; at most
// max_trials of them (the first ones). Random: max_trials seeded draws, without repeating a
// trial (fewer when the space has fewer distinct points).
std::vector<Trial> MakeTrials(const tune::Space& space, int max_trials);

// The number of points of a grid (0 for a random space).
long long GridSize(const tune::Space& space);

// The value a trial gives a param ("64" from "model.hidden_dim=64").
std::string OverrideValue(const std::string& override_text);

}  // namespace flexmoe
