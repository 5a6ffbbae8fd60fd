// The results of `flexmoe tune`: the trials CSV (one row per trial: its values, each fold's
// score, mean, std, status), the choice of the best trial and the best config as a textproto.
#pragma once

#include <string>
#include <vector>

#include "tune/tuner.h"

namespace flexmoe {

// "model.hidden_dim=64, training.lr=0.001"
std::string TrialLabel(const Trial& trial);

// The finished trial with the highest mean score (ties: the earlier trial); -1 if none.
int BestTrial(const std::vector<TrialResult>& trials);

// Written atomically; unfinished trials have empty scores and status "pending".
void WriteTrialsCsv(const TuneResult& result, const tune::Space& space, const std::string& path);

// The config with the best trial's values: every field shown, headed by comments naming the
// search, the trial and its cross-validated score.
void WriteBestConfig(const TuneOptions& options, const TuneResult& result, const std::string& path);

}  // namespace flexmoe
