// `flexmoe train`: a whole training job on this machine (launch/job_launcher.h).
#pragma once

#include <ostream>
#include <string>

#include "data_loader/prepared_check.h"
#include "data_loader/shard.h"
#include "proto/config.pb.h"

namespace flexmoe {

int TrainCommand(int argc, char** argv);

// Opens data.prepared_dir; kNotFound telling how to prepare it when it is missing, and
// kInvalidArgument naming the field when it was prepared from another data section
// (`config_path` names the config in the hint).
PreparedDataset OpenPrepared(const config::Config& config, const std::string& config_path,
                             PreparedParts parts);

// Prepares data.prepared_dir again when it is missing or was prepared from another data
// section, saying why on `out`; nothing when it matches. Throws kNotFound when it must be
// prepared but data.input is missing.
void PrepareIfStale(const config::Config& config, std::ostream& out);

// runs/<date-time>, the default run directory.
std::string DefaultRunDir();

}  // namespace flexmoe
