// The hostfile launch path (`flexmoe train --hostfile FILE`): the coordinator on the first
// host and one loader per host through `mpirun --host`, the workers through `mpirun
// --hostfile` with the attempt's hosts and their slots. The run directory must be on a file
// system every host sees.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "launch/supervisor/launcher.h"

namespace flexmoe {

// An Open MPI hostfile's hosts in order, with their slots (1 where a line names none; a
// host named twice has the sum); '#' starts a comment. kInvalidArgument naming FILE:LINE for
// a bad slots value, kNotFound for a missing file, and one naming the file when it names
// no host.
struct Hostfile {
  std::vector<std::string> hosts;
  std::map<std::string, int> slots;
};
Hostfile ReadHostfile(const std::string& path);

// mpirun with the options every multi-host launch needs: as root where this runs as root,
// and TCP keepalive on its daemons' connections (a lost daemon is noticed in seconds, not
// minutes) unless the environment sets them.
std::vector<std::string> MpirunCommand();

struct HostfileLaunchOptions {
  MemberCommand command;
  std::string hostfile;
  int workers = 0;  // 0: the slots of the attempt's hosts
  int threads = 0;  // per worker; 0: 1
};

class HostfileLauncher : public Launcher {
 public:
  explicit HostfileLauncher(HostfileLaunchOptions options) : options_(std::move(options)) {}
  ~HostfileLauncher() override;
  std::vector<std::string> Hosts() override { return ReadHostfile(options_.hostfile).hosts; }
  bool MultiHost() const override { return true; }
  int Workers(const Attempt* previous, const std::vector<std::string>& hosts,
              int dead_workers) override;
  int Threads(const Attempt&) override { return options_.threads > 0 ? options_.threads : 1; }
  std::unique_ptr<Member> StartCoordinator(const Attempt& attempt) override;
  std::unique_ptr<Member> StartLoaders(const Attempt& attempt) override;
  std::unique_ptr<Member> StartWorkers(const Attempt& attempt) override;
  bool Reachable(const std::string& host) override;
  std::string ResumeCommand() const override;
  std::string LoaderLogs() const override;

 private:
  HostfileLaunchOptions options_;
  std::vector<std::string> written_;  // the attempts' hostfiles, removed at the end
};

}  // namespace flexmoe
