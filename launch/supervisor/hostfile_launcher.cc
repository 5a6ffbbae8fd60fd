// The hostfile launch path (hostfile_launcher.h).
#include "launch/supervisor/hostfile_launcher.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/env.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "launch/supervisor/processes.h"

namespace flexmoe {

Hostfile ReadHostfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail(ErrorCode::kNotFound, "cannot read the hostfile ", path);
  Hostfile out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    std::istringstream fields(line);
    std::string host, field;
    if (!(fields >> host)) continue;
    int slots = 1;
    while (fields >> field) {
      if (field.rfind("slots=", 0) != 0) continue;  // max_slots= and the like
      const std::string value = field.substr(6);
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos ||
          value.size() > 6 || std::stoi(value) < 1) {
        Fail(ErrorCode::kInvalidArgument, path, ":", number, ": '", field,
             "' is not slots=N with N a positive whole number");
      }
      slots = std::stoi(value);
    }
    if (out.slots.count(host) == 0) out.hosts.push_back(host);
    out.slots[host] += slots;
  }
  if (out.hosts.empty()) Fail(ErrorCode::kInvalidArgument, "the hostfile ", path, " names no host");
  return out;
}

std::vector<std::string> MpirunCommand() {
  std::vector<std::string> argv = {"mpirun"};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
  for (const auto& [name, value] : {std::pair<std::string, std::string>{"keepalive_time", "2"},
                                    {"keepalive_intvl", "1"},
                                    {"keepalive_probes", "3"}}) {
    if (!GetEnv(("OMPI_MCA_oob_tcp_" + name).c_str()).empty()) continue;
    argv.insert(argv.end(), {"--mca", "oob_tcp_" + name, value});
  }
  return argv;
}

HostfileLauncher::~HostfileLauncher() {
  std::error_code ec;
  for (const std::string& f : written_) std::filesystem::remove(f, ec);
}

int HostfileLauncher::Workers(const Attempt* previous, const std::vector<std::string>& hosts, int) {
  const Hostfile file = ReadHostfile(options_.hostfile);
  int slots = 0;
  for (const std::string& h : hosts) slots += file.slots.count(h) ? file.slots.at(h) : 1;
  if (options_.workers <= 0) return slots;
  // A restart on fewer hosts runs as many workers as their slots allow.
  return previous != nullptr && options_.workers > slots ? slots : options_.workers;
}

std::unique_ptr<Member> HostfileLauncher::StartCoordinator(const Attempt& attempt) {
  const std::string& first = attempt.hosts.front();
  std::vector<std::string> argv = MpirunCommand();
  argv.insert(argv.end(), {"--host", first, "-np", "1"});
  const std::vector<std::string> coordinator = options_.command.Args("coordinator");
  argv.insert(argv.end(), coordinator.begin(), coordinator.end());
  argv.insert(argv.end(), {"--listen", first + ":0", "--restart", std::to_string(attempt.number)});
  const std::string log = RunDir(options_.command.run_dir).coordinator_log();
  return std::make_unique<ProcessMember>(ChildSpec{"coordinator", argv, log, 0},
                                         std::vector<std::string>{log});
}

std::unique_ptr<Member> HostfileLauncher::StartLoaders(const Attempt& attempt) {
  std::string hosts;
  for (const std::string& h : attempt.hosts) hosts += (hosts.empty() ? "" : ",") + h;
  std::vector<std::string> argv = MpirunCommand();
  argv.insert(argv.end(), {"--host", hosts, "--map-by", "ppr:1:node"});
  const std::vector<std::string> loader = options_.command.LoaderOnItsHost(attempt.coordinator);
  argv.insert(argv.end(), loader.begin(), loader.end());
  const std::string log = RunDir(options_.command.run_dir).loaders_log();
  return std::make_unique<ProcessMember>(ChildSpec{"loaders", argv, log, 0},
                                         std::vector<std::string>{log});
}

std::unique_ptr<Member> HostfileLauncher::StartWorkers(const Attempt& attempt) {
  const Hostfile file = ReadHostfile(options_.hostfile);
  std::string lines;
  for (const std::string& h : attempt.hosts) {
    lines += h + " slots=" + std::to_string(file.slots.count(h) ? file.slots.at(h) : 1) + "\n";
  }
  const std::string path = RunDir(options_.command.run_dir).attempt_hostfile(attempt.number);
  WriteFileAtomically(path, lines);
  written_.push_back(path);
  std::vector<std::string> argv = MpirunCommand();
  argv.insert(argv.end(), {"--hostfile", path});
  const std::vector<std::string> workers =
      options_.command.MpirunWorkers(attempt, Threads(attempt));
  argv.insert(argv.end(), workers.begin(), workers.end());
  return std::make_unique<ProcessMember>(ChildSpec{"workers", argv, "", 0},
                                         std::vector<std::string>{});
}

bool HostfileLauncher::Reachable(const std::string& host) {
  std::vector<std::string> argv = {"mpirun"};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
  argv.insert(argv.end(), {"--host", host, "-np", "1", "true"});
  const CommandResult probe = RunCommandWithDeadline(argv, 4);
  return probe.ran && probe.status == 0;
}

std::string HostfileLauncher::ResumeCommand() const {
  return "flexmoe train --hostfile " + options_.hostfile + " --config " +
         options_.command.config_path + " --set run.dir=" + options_.command.run_dir + " --resume";
}

std::string HostfileLauncher::LoaderLogs() const {
  return FileName(RunDir(options_.command.run_dir).loaders_log());
}

}  // namespace flexmoe
