// Joining the job's coordinator (cluster.coordinator) as a worker or a loader.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cluster/coord/client.h"
#include "proto/config.pb.h"

namespace flexmoe {

// Registers with the coordinator of `config` (null when cluster.coordinator is empty).
// `rank`: the world rank (workers) or the loader's index; `port`: a listening port or 0.
std::unique_ptr<CoordinatorClient> JoinCoordinator(
    const config::Config& config, coordinator::Role role, int rank, int world_size, int port,
    std::function<void(bool finished, const std::string& line, int exit_status)> on_stop);

}  // namespace flexmoe
