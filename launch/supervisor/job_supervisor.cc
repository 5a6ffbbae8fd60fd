// The job's lease, attempts, restarts and last line (job_supervisor.h).
#include "launch/supervisor/job_supervisor.h"

#include <algorithm>
#include <filesystem>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/base/run_lease.h"
#include "cluster/net/job_token.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

std::string Joined(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& w : words) text += (text.empty() ? "" : " ") + w;
  return text;
}

}  // namespace

int JobSupervisor::Run() {
  std::filesystem::create_directories(options_.run_dir);
  // One job per run directory: before anything of the job's is written there.
  RunLease::Options lease_options;
  lease_options.run_dir = options_.run_dir;
  lease_options.timeout_s = options_.config.cluster().heartbeat_timeout_s();
  lease_options.what = options_.name;
  StopRequests* stop = stop_;
  const std::string name = options_.name;
  lease_options.on_lost = [stop, name](const LeaseHolder& by) {
    PrintErrorLine(name + ": another job (host " + by.host + ", pid " + std::to_string(by.pid) +
                   ") took over the run directory's lease; stopping at once");
    stop->lease_lost = true;
  };
  std::string taken_over;
  const RunLease lease(lease_options, &taken_over);
  if (!taken_over.empty()) out_ << options_.name << ": " << taken_over << std::endl;
  WriteFileAtomically(RunDir(options_.run_dir).config(), ConfigToText(options_.config));
  return RunAttempts();
}

int JobSupervisor::RunAttempts() {
  Attempt attempt;
  attempt.hosts = launcher_->Hosts();
  if (options_.max_hosts > 0 && static_cast<int>(attempt.hosts.size()) > options_.max_hosts) {
    attempt.hosts.resize(options_.max_hosts);
  }
  if (static_cast<int>(attempt.hosts.size()) < options_.min_hosts) {
    Fail(ErrorCode::kInvalidArgument, options_.name, ": ", attempt.hosts.size(),
         " host(s), fewer than the ", options_.min_hosts, " asked for (--nodes)");
  }
  attempt.workers = launcher_->Workers(nullptr, attempt.hosts, 0);
  attempt.resume = options_.resume;
  while (true) {
    // A fresh token for every attempt: an earlier attempt's members cannot join this one.
    WriteTokenFile(RunDir(options_.run_dir).job_token(), NewToken());
    const AttemptOutcome outcome =
        AttemptRunner(options_, launcher_, stop_, out_, err_, attempt).Run();
    const bool ended = !outcome.started || outcome.state != "failed" || stop_->Asked() ||
                       attempt.number >= options_.max_restarts;
    const std::vector<std::string> next_hosts =
        ended ? std::vector<std::string>{} : NextHosts(outcome);
    if (ended || next_hosts.empty()) return Summarize(attempt, outcome);
    Attempt next;
    next.number = attempt.number + 1;
    next.hosts = next_hosts;
    next.workers = launcher_->Workers(&attempt, next.hosts, outcome.dead_workers);
    next.resume = true;  // from the newest checkpoint, or from the start without one
    next.why = outcome.reason;
    err_ << options_.name << ": restart " << next.number << " of " << options_.max_restarts
         << " after: " << outcome.reason << "; from "
         << (outcome.newest_checkpoint.empty() ? "the start" : outcome.newest_checkpoint) << " on "
         << next.workers << " worker" << (next.workers == 1 ? "" : "s")
         << (launcher_->MultiHost() ? " on " + Joined(next.hosts) : "") << std::endl;
    attempt = next;
  }
}

std::vector<std::string> JobSupervisor::NextHosts(const AttemptOutcome& outcome) const {
  std::vector<std::string> pool;
  try {
    pool = launcher_->Hosts();
  } catch (const Error&) {
    pool = outcome.reachable;  // the hostfile went bad meanwhile: the hosts that answered
  }
  std::vector<std::string> hosts;
  for (const std::string& h : pool) {
    const bool answered =
        std::find(outcome.reachable.begin(), outcome.reachable.end(), h) != outcome.reachable.end();
    if (answered &&
        (options_.max_hosts <= 0 || static_cast<int>(hosts.size()) < options_.max_hosts)) {
      hosts.push_back(h);
    }
  }
  if (static_cast<int>(hosts.size()) < options_.min_hosts) return {};
  return hosts;
}

int JobSupervisor::Summarize(const Attempt& attempt, const AttemptOutcome& outcome) {
  const std::string& run = options_.run_dir;
  if (!outcome.started) {
    err_ << options_.name << ": the job failed to start: " << outcome.reason << "; run directory "
         << run << std::endl;
    return outcome.status;
  }
  const std::string checkpoint =
      outcome.newest_checkpoint.empty() ? std::string("none") : outcome.newest_checkpoint;
  if (outcome.state == "finished") {
    out_ << "job finished" << (launcher_->MultiHost() ? " on " + Joined(attempt.hosts) : "")
         << "; run directory " << run << std::endl;
    if (options_.on_finished) options_.on_finished(run);
  } else if (outcome.state == "preempted") {
    out_ << "job stopped at a checkpoint; run directory " << run << "; newest checkpoint "
         << checkpoint << "; continue with: " << launcher_->ResumeCommand() << std::endl;
  } else {
    std::string why = outcome.reason;
    if (!stop_->Asked() && attempt.number < options_.max_restarts) {
      why += "; fewer than " + std::to_string(options_.min_hosts) + " host(s) left to restart on";
    }
    err_ << options_.name << ": the job failed: " << why << "; newest checkpoint " << checkpoint
         << "; run directory " << run << std::endl;
  }
  return outcome.status;
}

}  // namespace flexmoe
