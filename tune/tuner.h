// `flexmoe tune`: a search over named config fields, each trial scored by k-fold
// cross-validation on the training and validation splits (the test split is never read:
// its samples are in no fold's prepared data), trials run as `flexmoe train` children in
// parallel up to the cores, a CSV of the trials and the best config as a textproto.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "tune/search_space.h"

namespace flexmoe {

struct TuneOptions {
  std::string config_path;
  // Set by RunTune: trials read a copy of the config in OUT (config-<CRC32C>.textproto), so
  // editing the file during a search changes no trial, and a resumed search reuses a fold
  // only if the config's text is the same; config_path then names the copy and
  // config_origin the file given.
  std::string config_origin;
  std::vector<std::string> overrides;  // the command line's --set, applied to every trial
  std::string space_path;
  int max_trials = 0;
  std::string out_dir;
  int parallel = 0;  // trials at once; 0: the cores / threads
  int threads = 1;   // compute threads of each trial's one worker
  double trial_timeout_s = 7200;
  std::string executable;  // the flexmoe binary the trials run
  // Polled while trials run: true stops the search (running trials get SIGTERM).
  std::function<bool()> stop_requested;
};

struct TrialResult {
  Trial trial;
  std::vector<double> fold_scores;  // the validation score of each fold; NaN: failed
  double mean = 0, std = 0;         // over the folds (population std); NaN if any failed
  std::string error;                // the first failure, with its log's tail
  int reused = 0;                   // folds whose finished run was found and reused
};

struct TuneResult {
  std::string metric;  // the config's training.selection, as the score
  std::vector<TrialResult> trials;
  int best = -1;  // index into trials; -1 when none finished
  std::string csv_path, best_config_path;
  bool stopped = false;
};

TuneResult RunTune(const TuneOptions& options, std::ostream* progress);

}  // namespace flexmoe
