// JoinCoordinator (membership.h).
#include "launch/membership.h"

#include <unistd.h>

#include <csignal>
#include <fstream>

#include "cluster/base/error.h"
#include "cluster/base/host_name.h"
#include "cluster/net/job_token.h"
#include "proto/config_compare.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

// A member that lost the coordinator may be on a host cut off from the job, where the Open
// MPI daemon that started it (orted; prted in Open MPI 5) would wait for the unreachable
// mpirun for as long as TCP retries a send: minutes. The job is over for this host, so the
// daemon is ended too. Its SIGTERM to this member only sets the preemption flag: the member
// still says why it stops and leaves as it would have.
void EndOpenMpiDaemonOfThisHost() {
  const pid_t parent = ::getppid();
  std::ifstream comm("/proc/" + std::to_string(parent) + "/comm");
  std::string name;
  std::getline(comm, name);
  if (name != "orted" && name != "prted") return;
  PrintErrorLine("flexmoe: the coordinator is lost: ending this host's Open MPI daemon (" + name +
                 ", pid " + std::to_string(parent) + ")");
  ::kill(parent, SIGTERM);
}

}  // namespace

std::unique_ptr<CoordinatorClient> JoinCoordinator(
    const config::Config& config, coordinator::Role role, int rank, int world_size, int port,
    std::function<void(bool finished, const std::string& line, int exit_status)> on_stop) {
  const config::ClusterConfig& cluster = config.cluster();
  if (cluster.coordinator().empty()) return nullptr;
  CoordinatorClientOptions options;
  options.address = cluster.coordinator();
  options.token = ReadJobToken(cluster);
  options.member.set_role(role);
  options.member.set_rank(rank);
  options.member.set_host(HostName());
  options.member.set_pid(::getpid());
  options.member.set_port(port);
  options.world_size = world_size;
  options.config_hash = ComputationHash(config);
  options.config_text = ConfigToText(config);
  options.connect_timeout_s = cluster.connect_timeout_s();
  options.on_stop = std::move(on_stop);
  options.on_lost = EndOpenMpiDaemonOfThisHost;
  return std::make_unique<CoordinatorClient>(options);
}

}  // namespace flexmoe
