// What `flexmoe train` (one process) and `flexmoe worker` (one rank of W) share: the run
// directory, the checkpoint each seed resumes from, the seed loop and the report over
// seeds, so that a job means the same at any worker count.
#pragma once

#include <iosfwd>
#include <string>

#include "data_loader/samples.h"
#include "proto/config.pb.h"
#include "trainer/train/trainer.h"

namespace flexmoe {

// The test-only checkpoint fault of the environment (cluster/base/env.h), or none.
CheckpointFault CheckpointFaultFromEnv();

// Trains every seed of the config (training.seeds, else training.seed) with `options`
// (world, threads, log), one after another; with several seeds each gets run_dir/seed-N.
// With `resume`, each seed continues from its newest complete checkpoint (seeds without
// one start afresh; at least one must have one); checkpoint.resume_from names one
// checkpoint for a single-seed run. `out` (rank 0; may be null) gets the per-seed lines
// and, with several seeds, the mean +- std. Returns the exit status.
int TrainSeeds(const config::Config& config, const PreparedDataset& prepared, const Samples* data,
               const std::string& run_dir, bool resume, TrainOptions options, std::ostream* out);

// run.dir, or a new runs/<date-time> (refused with --resume: a run to continue is named).
std::string RunDirFor(const config::Config& config, bool resume);

}  // namespace flexmoe
