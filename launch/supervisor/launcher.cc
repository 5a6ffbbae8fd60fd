// The command lines every launcher builds (launcher.h).
#include "launch/supervisor/launcher.h"

#include <filesystem>

#include "cluster/base/run_dir.h"

namespace flexmoe {

std::string FileName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

std::string SelfExecutable() { return std::filesystem::canonical("/proc/self/exe").string(); }

std::vector<std::string> MemberCommand::Args(const std::string& command) const {
  std::vector<std::string> argv = {self, command, "--config", config_path};
  for (const std::string& o : overrides) {
    argv.push_back("--set");
    argv.push_back(o);
  }
  for (const std::string& o :
       {"run.dir=" + run_dir, "cluster.job_token_source=file:" + RunDir(run_dir).job_token()}) {
    argv.push_back("--set");
    argv.push_back(o);
  }
  return argv;
}

std::vector<std::string> MemberCommand::WorkerArgs(const Attempt& attempt, int threads) const {
  std::string loaders;
  for (const std::string& l : attempt.loaders) loaders += (loaders.empty() ? "" : ",") + l;
  std::vector<std::string> argv = Args("worker");
  argv.insert(argv.end(),
              {"--set", "cluster.coordinator=" + attempt.coordinator, "--set",
               "cluster.loader_addresses=" + loaders, "--threads", std::to_string(threads)});
  if (attempt.resume) argv.push_back("--resume");
  if (attempt.number > 0) {
    argv.insert(argv.end(),
                {"--restart", std::to_string(attempt.number), "--restart-reason", attempt.why});
  }
  return argv;
}

std::vector<std::string> MemberCommand::MpirunWorkers(const Attempt& attempt, int threads) const {
  std::vector<std::string> argv = {"-np", std::to_string(attempt.workers), "-x",
                                   "OMP_NUM_THREADS=" + std::to_string(threads)};
  const std::vector<std::string> worker = WorkerArgs(attempt, threads);
  argv.insert(argv.end(), worker.begin(), worker.end());
  return argv;
}

std::vector<std::string> MemberCommand::LoaderOnItsHost(const std::string& coordinator) const {
  std::vector<std::string> loader = Args("loader");
  std::vector<std::string> argv = {"bash", "-c",
                                   "exec \"$0\" loader \"$@\" --listen \"$(hostname):0\"", self};
  argv.insert(argv.end(), loader.begin() + 2, loader.end());
  argv.insert(argv.end(), {"--set", "cluster.coordinator=" + coordinator});
  return argv;
}

}  // namespace flexmoe
