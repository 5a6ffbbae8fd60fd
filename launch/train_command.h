// `flexmoe train`: a whole training job on this machine (launch/job_launcher.h).
#pragma once

#include <string>

#include "data_loader/shard.h"
#include "proto/config.pb.h"

namespace flexmoe {

int TrainCommand(int argc, char** argv);

// Opens data.prepared_dir; kNotFound telling how to prepare it when it is missing
// (`config_path` names the config in that hint).
PreparedDataset OpenPrepared(const config::Config& config, const std::string& config_path);

// runs/<date-time>, the default run directory.
std::string DefaultRunDir();

}  // namespace flexmoe
