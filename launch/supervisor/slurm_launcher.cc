// The SLURM launch path (slurm_launcher.h).
#include "launch/supervisor/slurm_launcher.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "cluster/base/env.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "launch/supervisor/hostfile_launcher.h"
#include "launch/supervisor/processes.h"

namespace flexmoe {
namespace {

std::string Hostname() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

int PositiveFromEnv(const char* name, int otherwise) {
  const std::string value = GetEnv(name);
  if (value.empty()) return otherwise;
  if (value.find_first_not_of("0123456789") != std::string::npos || value.size() > 6 ||
      std::stoi(value) < 1) {
    Fail(ErrorCode::kInvalidArgument, "the environment's ", name, "='", value,
         "' is not a positive whole number");
  }
  return std::stoi(value);
}

}  // namespace

SlurmLauncher::SlurmLauncher(SlurmLaunchOptions options) : options_(std::move(options)) {
  job_id_ = GetEnv("SLURM_JOB_ID");
  if (job_id_.empty()) {
    Fail(ErrorCode::kInvalidArgument,
         "train --slurm: not inside a SLURM allocation (SLURM_JOB_ID is not set); run it "
         "from a batch script (sbatch) or salloc");
  }
  const CommandResult names =
      RunCommandWithDeadline({"scontrol", "show", "hostnames", GetEnv("SLURM_JOB_NODELIST")}, 30);
  std::istringstream lines(names.output);
  for (std::string node; std::getline(lines, node);) {
    if (!node.empty()) nodes_.push_back(node);
  }
  if (!names.ran || names.status != 0 || nodes_.empty()) {
    Fail(ErrorCode::kUnavailable, "train --slurm: scontrol show hostnames '",
         GetEnv("SLURM_JOB_NODELIST"), "' named no node: ", names.output);
  }
  tasks_ = PositiveFromEnv("SLURM_NTASKS", static_cast<int>(nodes_.size()));
  tasks_per_node_ = std::max<int>(1, tasks_ / static_cast<int>(nodes_.size()));
  const CommandResult job = RunCommandWithDeadline({"scontrol", "show", "job", job_id_}, 30);
  const size_t at = job.output.find("Command=");
  if (at != std::string::npos) {
    batch_script_ = job.output.substr(at + 8, job.output.find_first_of(" \n", at) - at - 8);
  }
}

int SlurmLauncher::Workers(const Attempt*, const std::vector<std::string>& hosts, int) {
  if (hosts.size() == nodes_.size()) return options_.workers > 0 ? options_.workers : tasks_;
  return static_cast<int>(hosts.size()) * tasks_per_node_;
}

int SlurmLauncher::Threads(const Attempt&) {
  return options_.threads > 0 ? options_.threads : PositiveFromEnv("SLURM_CPUS_PER_TASK", 1);
}

std::unique_ptr<Member> SlurmLauncher::StartCoordinator(const Attempt& attempt) {
  std::vector<std::string> argv = options_.command.Args("coordinator");
  argv.insert(argv.end(),
              {"--listen", Hostname() + ":0", "--restart", std::to_string(attempt.number)});
  const std::string log = RunDir(options_.command.run_dir).coordinator_log();
  return std::make_unique<ProcessMember>(ChildSpec{"coordinator", argv, log, 0},
                                         std::vector<std::string>{log});
}

std::unique_ptr<Member> SlurmLauncher::StartLoaders(const Attempt& attempt) {
  const RunDir run(options_.command.run_dir);
  std::string nodes;
  std::vector<std::string> logs;
  for (const std::string& n : attempt.hosts) {
    nodes += (nodes.empty() ? "" : ",") + n;
    logs.push_back(run.node_loader_log(n));
    std::error_code ec;
    std::filesystem::remove(logs.back(), ec);  // an earlier attempt's address is stale
  }
  const std::string count = std::to_string(attempt.hosts.size());
  std::vector<std::string> argv = {"srun",
                                   "--overlap",
                                   "--nodes=" + count,
                                   "--ntasks=" + count,
                                   "--ntasks-per-node=1",
                                   "--nodelist=" + nodes,
                                   "--kill-on-bad-exit=0",
                                   "--output=" + run.node_loader_log("%N")};
  const std::vector<std::string> loader = options_.command.LoaderOnItsHost(attempt.coordinator);
  argv.insert(argv.end(), loader.begin(), loader.end());
  return std::make_unique<ProcessMember>(ChildSpec{"loaders", argv, "", 0}, logs);
}

std::unique_ptr<Member> SlurmLauncher::StartWorkers(const Attempt& attempt) {
  // mpirun starts its daemons as srun steps; they may share the nodes' CPUs with the
  // loaders and with an earlier attempt's steps SLURM has not yet cleared (a step on a lost
  // node lingers until the node is declared down).
  const std::string slurm_args = GetEnv("OMPI_MCA_plm_slurm_args");
  std::vector<std::string> argv = {
      "env",
      "OMPI_MCA_plm_slurm_args=" + (slurm_args.empty() ? "" : slurm_args + " ") + "--overlap"};
  const std::vector<std::string> mpirun = MpirunCommand();
  argv.insert(argv.end(), mpirun.begin(), mpirun.end());
  // The whole allocation as SLURM laid it out; after a lost node, the nodes left.
  if (attempt.hosts.size() != nodes_.size()) {
    std::string placement;
    for (const std::string& n : attempt.hosts) {
      placement += (placement.empty() ? "" : ",") + n + ":" + std::to_string(tasks_per_node_);
    }
    argv.insert(argv.end(), {"--host", placement});
  }
  const std::vector<std::string> workers =
      options_.command.MpirunWorkers(attempt, Threads(attempt));
  argv.insert(argv.end(), workers.begin(), workers.end());
  return std::make_unique<ProcessMember>(ChildSpec{"workers", argv, "", 0},
                                         std::vector<std::string>{});
}

bool SlurmLauncher::Reachable(const std::string& host) {
  const CommandResult probe = RunCommandWithDeadline(
      {"srun", "--overlap", "--nodes=1", "--ntasks=1", "--nodelist=" + host, "true"}, 4);
  return probe.ran && probe.status == 0;
}

std::string SlurmLauncher::ResumeCommand() const {
  return "sbatch " + (batch_script_.empty() ? std::string("BATCH_SCRIPT") : batch_script_) +
         " --config " + options_.command.config_path + " --run-dir " + options_.command.run_dir +
         " --resume";
}

std::string SlurmLauncher::LoaderLogs() const {
  return FileName(RunDir(options_.command.run_dir).node_loader_log("<node>"));
}

}  // namespace flexmoe
