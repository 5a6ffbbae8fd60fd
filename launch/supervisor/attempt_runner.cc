// One attempt of a job: start, watch, bounded end, outcome (attempt_runner.h).
#include "launch/supervisor/attempt_runner.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/net/job_token.h"

namespace flexmoe {
namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::optional<JobRecord> ReadJob(const std::string& run_dir) {
  try {
    return ReadJobRecord(run_dir);
  } catch (const Error&) {
    return std::nullopt;  // none yet (the coordinator died first) or torn
  }
}

bool EndedWell(const std::optional<JobRecord>& job) {
  return job && (job->state == "finished" || job->state == "preempted");
}

// The members job.json places on `host`: "worker 2, loader 2".
std::string MembersOn(const std::optional<JobRecord>& job, const std::string& host) {
  if (!job) return "";
  std::vector<std::tuple<bool, int, std::string>> on;
  for (const JobMemberRecord& m : job->members) {
    if (m.host == host) on.emplace_back(m.role != "worker", m.rank, m.role);
  }
  std::sort(on.begin(), on.end());
  std::string text;
  for (const auto& [loader, rank, role] : on) {
    text += (text.empty() ? "" : ", ") + role + " " + std::to_string(rank);
  }
  return text;
}

std::string FormatSeconds(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g s", s);
  return text;
}

std::string Plural(int n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

AttemptRunner::AttemptRunner(const SupervisorOptions& options, Launcher* launcher,
                             StopRequests* stop, std::ostream& out, std::ostream& err,
                             Attempt attempt)
    : options_(options),
      launcher_(launcher),
      stop_(stop),
      out_(out),
      err_(err),
      attempt_(std::move(attempt)) {}

AttemptRunner::~AttemptRunner() { EndAll(); }

std::vector<Member*> AttemptRunner::Members() const {
  std::vector<Member*> started;
  for (Member* m : {coordinator_.get(), loaders_.get(), workers_.get()}) {
    if (m != nullptr) started.push_back(m);
  }
  return started;
}

AttemptOutcome AttemptRunner::Run() {
  AttemptOutcome failed;
  if (!Start(&failed)) {
    EndAll();
    return failed;
  }
  Watch();
  return Outcome();
}

std::optional<std::vector<std::string>> AttemptRunner::Ready(Member& member, int count,
                                                             AttemptOutcome* failed) {
  const double timeout_s = options_.config.cluster().connect_timeout_s();
  try {
    return member.WaitForLines("listening on ", count, timeout_s);
  } catch (const Error&) {
    const std::optional<int> status = member.Poll();
    const std::string why = member.LastError();
    failed->started = false;
    failed->status = status && *status != 0 ? *status : 1;
    failed->reason = "the " + member.name() + " did not start (" +
                     (status ? "exit " + std::to_string(*status)
                             : "no address after " + FormatSeconds(timeout_s)) +
                     ")" + (why.empty() ? "" : ": " + why);
    return std::nullopt;
  }
}

bool AttemptRunner::Start(AttemptOutcome* failed) {
  try {
    coordinator_ = launcher_->StartCoordinator(attempt_);
    const auto coordinator = Ready(*coordinator_, 1, failed);
    if (!coordinator) return false;
    attempt_.coordinator = coordinator->front();
    PrintLivePage();
    loaders_ = launcher_->StartLoaders(attempt_);
    const auto loaders = Ready(*loaders_, static_cast<int>(attempt_.hosts.size()), failed);
    if (!loaders) return false;
    attempt_.loaders = *loaders;
    PrintStarted();
    workers_ = launcher_->StartWorkers(attempt_);
    return true;
  } catch (const Error& e) {  // a program that cannot be started at all (no mpirun, no srun)
    failed->started = false;
    failed->status = 1;
    failed->reason = e.what();
    return false;
  }
}

void AttemptRunner::PrintLivePage() {
  const config::ClusterConfig& cluster = options_.config.cluster();
  if (cluster.http_listen().empty()) return;
  AttemptOutcome failed;
  const auto url = [&]() -> std::optional<std::string> {
    try {
      return coordinator_->WaitForLines("live page on ", 1, cluster.connect_timeout_s()).front();
    } catch (const Error&) {
      return std::nullopt;  // the watch says what became of the coordinator
    }
  }();
  if (!url) return;
  const RunDir run(options_.run_dir);
  if (!cluster.http_require_token()) {
    out_ << "live page: " << *url << std::endl;
  } else if (launcher_->MultiHost()) {
    // Not into a batch log other users may read: where the page's own token is.
    out_ << "live page: " << *url << " (open " << *url << "?token=TOKEN once, TOKEN from "
         << run.web_token() << ")" << std::endl;
  } else {
    // The page's own token (not the job's), in a URL that sets the page's cookie and then
    // leaves the address bar.
    out_ << "live page: " << *url << "?token=" << ReadTokenFile(run.web_token()) << std::endl;
  }
}

void AttemptRunner::PrintStarted() {
  std::string hosts, loaders;
  for (const std::string& h : attempt_.hosts) hosts += " " + h;
  for (const std::string& l : attempt_.loaders) loaders += (loaders.empty() ? "" : ",") + l;
  const int threads = launcher_->Threads(attempt_);
  out_ << "job" << (launcher_->MultiHost() ? " on" + hosts : "") << ": coordinator "
       << attempt_.coordinator << ", " << (attempt_.loaders.size() == 1 ? "loader " : "loaders ")
       << loaders << ", " << Plural(attempt_.workers, "worker") << " x "
       << Plural(threads, "thread") << "; run directory " << options_.run_dir
       << " (logs: " << FileName(RunDir(options_.run_dir).coordinator_log()) << ", "
       << launcher_->LoaderLogs() << ")" << std::endl;
}

void AttemptRunner::ForwardStopRequests() {
  if (stop_->Asked() && !preempting_ && !stop_->lease_lost) {
    preempting_ = true;
    out_ << "\nstopping: the workers checkpoint at the next step"
         << (stop_->interrupts > 0 ? " (Ctrl-C again stops at once)" : "") << std::endl;
    coordinator_->Signal(SIGUSR1);
  }
}

void AttemptRunner::Watch() {
  std::optional<Clock::time_point> first_end;
  while (true) {
    ForwardStopRequests();
    if (stop_->AtOnce()) {
      if (stop_->interrupts > 1) out_ << "stopping at once" << std::endl;
      EndAll();
      return;
    }
    bool all = true, any = false;
    for (Member* m : Members()) {
      const bool ended = m->Poll().has_value();
      all = all && ended;
      any = any || ended;
    }
    if (all) return;
    if (any && !first_end) {
      first_end = Clock::now();
      // Started as soon as the job has failed, so that the probes overlap the members' end.
      if (!EndedWell(ReadJob(options_.run_dir))) StartProbes();
    }
    if (first_end && EndedLongEnough(*first_end)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool AttemptRunner::EndedLongEnough(Clock::time_point first_end) {
  const bool coordinator_ended = coordinator_->Poll().has_value();
  // A coordinator that is stopped (SIGSTOP, a debugger) cannot end the job: the members that
  // lost it have ended; it is what failed.
  if (!coordinator_ended && coordinator_->Stopped()) {
    coordinator_hung_ = "the coordinator was stopped (SIGSTOP or a debugger) and stopped answering";
    EndAll();
    return true;
  }
  if (coordinator_ended && !clean_end_) clean_end_ = EndedWell(ReadJob(options_.run_dir));
  // Once the coordinator has ended the job the others end on their own, or wait on
  // something that is gone (Open MPI waits for a lost daemon forever); while it runs it
  // has the heartbeat timeout to notice what ended.
  const double limit =
      coordinator_ended ? (*clean_end_ ? options_.clean_end_s : options_.failed_end_s)
                        : options_.config.cluster().heartbeat_timeout_s() + options_.failed_end_s;
  if (Since(first_end) <= limit) return false;
  if (!coordinator_ended) {
    coordinator_hung_ = "the coordinator stopped answering (still running " + FormatSeconds(limit) +
                        " after a member ended)";
  }
  for (Member* m : Members()) {
    if (!m->Poll()) {
      err_ << options_.name << ": ending the " << m->name() << ": still running " << limit
           << " s after the job ended" << std::endl;
    }
  }
  EndAll();
  return true;
}

void AttemptRunner::StartProbes() {
  std::vector<std::string> hosts = attempt_.hosts;
  try {
    for (const std::string& h : launcher_->Hosts()) {  // hosts that came back, or were added
      if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
    }
  } catch (const Error& e) {
    err_ << options_.name << ": warning: " << e.what() << std::endl;
  }
  for (const std::string& h : hosts) {
    Launcher* launcher = launcher_;
    probes_[h] = std::async(std::launch::async, [launcher, h] { return launcher->Reachable(h); });
  }
}

void AttemptRunner::EndAll() {
  std::vector<Member*> running;
  for (Member* m : Members()) {
    if (!m->Poll()) running.push_back(m);
  }
  if (running.empty()) return;
  for (Member* m : running) {
    m->Kill();
    ended_by_us_.insert(m);
  }
  const auto start = Clock::now();
  while (Since(start) < 10) {
    bool all = true;
    for (Member* m : running) all = m->Poll().has_value() && all;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  launcher_->KillLeftovers();
}

AttemptOutcome AttemptRunner::Outcome() {
  AttemptOutcome out;
  // The status of what ended by itself: a member the supervisor killed says only that.
  for (Member* m : {workers_.get(), coordinator_.get(), loaders_.get()}) {
    if (ended_by_us_.count(m) == 0 && m->Poll().value_or(0) != 0) {
      out.status = *m->Poll();
      break;
    }
  }
  const std::optional<JobRecord> job = ReadJob(options_.run_dir);
  if (job) {
    out.state = job->state;
    out.reason = job->reason;
    out.newest_checkpoint = job->newest_checkpoint;
    if (job->culprit && job->culprit->role == "worker") out.dead_workers = 1;
  }
  if (stop_->lease_lost) {
    out.state = "failed";
    out.reason = "another job took over the run directory's lease";
  } else if (stop_->interrupts > 1) {
    out.state = "failed";
    out.reason = "stopped at once (a second interrupt)";
  } else if (out.state == "running" || out.state == "starting" || out.state.empty()) {
    out.state = "failed";
    if (WorkersNeverJoined(job)) {
      // mpirun could not start them, or they failed before joining: the first cause.
      out.status = *workers_->Poll();
      out.reason = "the workers " + workers_->Describe() + " before any of them joined the job" +
                   (coordinator_hung_.empty() ? "" : "; then " + coordinator_hung_);
    } else {
      // The coordinator did not say: it is what died, or what hung.
      out.reason = coordinator_hung_.empty()
                       ? "the coordinator " + coordinator_->Describe() + " without ending the job"
                       : coordinator_hung_ + "; the members lost it";
    }
  }
  if (out.status != 0 && out.state != "failed") {
    out.state = "failed";  // the coordinator's verdict, but a member did not end well
  }
  if (out.state == "failed" && out.reason.empty()) {
    for (Member* m : {workers_.get(), coordinator_.get(), loaders_.get()}) {
      if (ended_by_us_.count(m) == 0 && m->Poll().value_or(0) != 0) {
        out.reason = "the " + m->name() + " " + m->Describe();
        break;
      }
    }
  }
  if (out.state == "failed" && out.status == 0) out.status = 1;
  NameLostHosts(job, &out);
  if (out.newest_checkpoint.empty()) {
    out.newest_checkpoint = RunDir(options_.run_dir).NewestCheckpoint();
  }
  return out;
}

bool AttemptRunner::WorkersNeverJoined(const std::optional<JobRecord>& job) {
  if (ended_by_us_.count(workers_.get()) != 0 || workers_->Poll().value_or(0) == 0) return false;
  if (!job) return true;
  for (const JobMemberRecord& m : job->members) {
    if (m.role == "worker") return false;
  }
  return true;
}

void AttemptRunner::NameLostHosts(const std::optional<JobRecord>& job, AttemptOutcome* out) {
  if (out->state != "failed") return;
  if (probes_.empty()) StartProbes();
  std::set<std::string> reachable;
  for (auto& [host, probe] : probes_) {
    if (probe.get()) {
      reachable.insert(host);
      out->reachable.push_back(host);
    }
  }
  bool lost = false;
  // A lost host is the first cause, whatever member the coordinator missed first.
  for (const std::string& h : attempt_.hosts) {
    if (reachable.count(h) != 0) continue;
    out->reason =
        "host " + h + " lost (" + MembersOn(job, h) + " on it); the coordinator: " + out->reason;
    lost = true;
  }
  // The supervisor ended mpirun itself: its status says so, not what failed.
  if (lost) out->status = 1;
}

}  // namespace flexmoe
