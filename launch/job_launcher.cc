// The local job: coordinator, loader and mpirun, their deadlines and restarts
// (job_launcher.h).
#include "launch/job_launcher.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "cluster/base/atomic_file.h"
#include "cluster/base/child_process.h"
#include "cluster/base/env.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/base/run_lease.h"
#include "cluster/metrics/job_record.h"
#include "cluster/net/job_token.h"
#include "inference/report.h"
#include "launch/preemption.h"
#include "proto/config_loader.h"
#include "trainer/checkpoint/resumable_manifest.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

// Set by the launcher's signal handlers and its lease thread: process-wide state owned by
// launch/, as the preemption flag (preemption.cc); lock-free atomics, which both may write.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> interrupts{0};
std::atomic<int> terminate_signal{0};

extern "C" void OnLauncherInterrupt(int) { interrupts.fetch_add(1); }
extern "C" void OnLauncherTerminate(int signal) { terminate_signal = signal; }

void CatchLauncherSignals() {
  CatchSignals(OnLauncherInterrupt, {SIGINT});
  CatchSignals(OnLauncherTerminate, {SIGTERM, SIGUSR1});
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A process's state letter (R, S, D, T, Z...) and parent from /proc/PID/stat; false when it
// cannot be read. The line is "pid (comm) state ppid ...", and comm may hold spaces, so it
// is parsed after its last ')'.
struct ProcStat {
  char state = 0;
  long ppid = 0;
};
bool ReadProcStat(const std::string& pid, ProcStat* out) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat;
  std::getline(in, stat);
  const size_t close = stat.rfind(')');
  return close != std::string::npos &&
         std::sscanf(stat.c_str() + close + 1, " %c %ld", &out->state, &out->ppid) == 2;
}

// The processes whose parent is `parent` (mpirun's ranks, which it puts in process groups
// of their own).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    ProcStat stat;
    if (ReadProcStat(name, &stat) && stat.ppid == parent) {
      children.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return children;
}

// The state letter of a process, or 0 when it cannot be read.
char ProcessState(pid_t pid) {
  ProcStat stat;
  return ReadProcStat(std::to_string(pid), &stat) ? stat.state : 0;
}

// One attempt of the job.
struct Attempt {
  int number = 0;  // 0: the first
  int workers = 1;
  bool resume = false;
  std::string why;  // what ended the previous attempt
};

struct JobOutcome {
  int status = 0;
  bool interrupted = false;
  std::string state;  // job.json's: finished, preempted, failed
  std::string reason;
  std::vector<int> dead_workers;  // ranks the coordinator found dead
  std::string newest_checkpoint;
};

class LocalJob {
 public:
  LocalJob(const LaunchOptions& options, const Attempt& attempt)
      : options_(options), attempt_(attempt) {}
  JobOutcome Run() {
    try {
      Start();
    } catch (...) {
      EndAll();  // what had started
      throw;
    }
    return Wait();
  }

 private:
  std::vector<std::string> MemberArgs(const std::string& command) const;
  void Start();
  // The coordinator's live page, with the token when one is required.
  void PrintLivePage(double ready_s);
  JobOutcome Wait();
  // Forwards the launcher's signals: the first SIGINT, SIGTERM or SIGUSR1 preempts the job
  // (checkpoint at the next step, stop); a second SIGINT ends it at once.
  void ForwardSignals();
  // SIGTERM to mpirun (it ends its ranks), SIGKILL to the rest, then to the whole group.
  void EndAll();
  JobOutcome Outcome();
  // The children started so far.
  std::vector<ChildProcess*> children() const {
    std::vector<ChildProcess*> started;
    for (ChildProcess* c : {coordinator_.get(), loader_.get(), workers_.get()}) {
      if (c != nullptr) started.push_back(c);
    }
    return started;
  }

  const LaunchOptions& options_;
  Attempt attempt_;
  std::string self_ = std::filesystem::canonical("/proc/self/exe").string();
  std::unique_ptr<ChildProcess> coordinator_, loader_, workers_;
  pid_t group_ = 0;
  bool preempting_ = false, killed_ = false;
  std::string coordinator_hung_;  // why the launcher ended a coordinator that had not ended
};

std::vector<std::string> LocalJob::MemberArgs(const std::string& command) const {
  std::vector<std::string> argv = {self_, command, "--config", options_.config_path};
  for (const std::string& o : options_.overrides) {
    argv.push_back("--set");
    argv.push_back(o);
  }
  const std::string& run = options_.run_dir;
  for (const std::string& o :
       {"run.dir=" + run, "cluster.job_token_source=file:" + RunDir(run).job_token()}) {
    argv.push_back("--set");
    argv.push_back(o);
  }
  return argv;
}

void LocalJob::PrintLivePage(double ready_s) {
  const config::ClusterConfig& cluster = options_.config.cluster();
  if (cluster.http_listen().empty()) return;
  std::string url = coordinator_->WaitForLogLine("live page on ", ready_s);
  if (cluster.http_require_token()) {
    // The page's own token (not the job's), in a URL that sets the page's cookie and then
    // leaves the address bar.
    url += "?token=" + ReadTokenFile(RunDir(options_.run_dir).web_token());
  }
  std::cout << "live page: " << url << std::endl;
}

void LocalJob::Start() {
  const std::string& run = options_.run_dir;
  const double ready_s = options_.config.cluster().connect_timeout_s();
  std::vector<std::string> argv = MemberArgs("coordinator");
  argv.insert(argv.end(),
              {"--listen", options_.config.cluster().bind_address() + ":0", "--launcher-pid",
               std::to_string(::getpid()), "--restart", std::to_string(attempt_.number)});
  coordinator_ = std::make_unique<ChildProcess>(
      ChildSpec{"coordinator", argv, RunDir(run).coordinator_log(), 0});
  group_ = coordinator_->pid();
  const std::string coordinator = coordinator_->WaitForLogLine("listening on ", ready_s);
  PrintLivePage(ready_s);

  argv = MemberArgs("loader");
  argv.insert(argv.end(), {"--set", "cluster.coordinator=" + coordinator});
  loader_ =
      std::make_unique<ChildProcess>(ChildSpec{"loader", argv, RunDir(run).loader_log(), group_});
  const std::string loader = loader_->WaitForLogLine("listening on ", ready_s);

  const int threads = options_.threads > 0
                          ? options_.threads
                          : DefaultThreadsPerWorker(UsableCores(), attempt_.workers);
  argv = {"mpirun",          "-np", std::to_string(attempt_.workers),
          "--oversubscribe", "-x",  "OMP_NUM_THREADS=" + std::to_string(threads)};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
  // A terminal gets one progress line, redrawn (the ranks' output is mpirun's pipe).
  if (::isatty(STDOUT_FILENO))
    argv.insert(argv.end(), {"-x", std::string(kEnvProgress) + "=redraw"});
  std::vector<std::string> worker = MemberArgs("worker");
  argv.insert(argv.end(), worker.begin(), worker.end());
  argv.insert(argv.end(),
              {"--set", "cluster.coordinator=" + coordinator, "--set",
               "cluster.loader_addresses=" + loader, "--threads", std::to_string(threads)});
  if (attempt_.resume) argv.push_back("--resume");
  if (attempt_.number > 0) {
    argv.insert(argv.end(),
                {"--restart", std::to_string(attempt_.number), "--restart-reason", attempt_.why});
  }
  std::cout << "job: coordinator " << coordinator << ", loader " << loader << ", "
            << attempt_.workers << " worker" << (attempt_.workers == 1 ? "" : "s") << " x "
            << threads << " thread" << (threads == 1 ? "" : "s") << "; run directory " << run
            << " (logs: coordinator.log, loader.log)" << std::endl;
  workers_ = std::make_unique<ChildProcess>(ChildSpec{"workers", argv, "", group_});
}

void LocalJob::ForwardSignals() {
  const bool asked = interrupts > 0 || terminate_signal != 0;
  if (asked && !preempting_) {
    preempting_ = true;
    std::cout << "\nstopping: the workers checkpoint at the next step"
              << (interrupts > 0 ? " (Ctrl-C again stops at once)" : "") << std::endl;
    coordinator_->Signal(SIGUSR1);
  }
  if (interrupts > 1 && !killed_) {
    std::cout << "stopping at once" << std::endl;
    EndAll();
  }
}

void LocalJob::EndAll() {
  killed_ = true;
  // mpirun's ranks, in case mpirun goes before it has ended them.
  std::vector<pid_t> ranks;
  if (workers_ != nullptr && !workers_->Ended()) ranks = ChildrenOf(workers_->pid());
  for (ChildProcess* c : children()) c->Signal(c == workers_.get() ? SIGTERM : SIGKILL);
  const auto start = Clock::now();
  while (Since(start) < 3) {
    bool all = true;
    for (ChildProcess* c : children()) all = c->Ended() && all;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (group_ > 0) ::killpg(group_, SIGKILL);  // whatever of the job's group is left
  for (pid_t rank : ranks) ::kill(rank, SIGKILL);
  for (ChildProcess* c : children()) {
    while (!c->Ended()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

JobOutcome LocalJob::Wait() {
  // After the first process ends: the others end on their own (the coordinator stops them,
  // or they lose it within the heartbeat timeout); past this grace they are ended.
  const double failure_grace = options_.config.cluster().heartbeat_timeout_s() + 5;
  std::optional<Clock::time_point> first_end;
  double grace = 0;
  while (true) {
    ForwardSignals();
    bool all = true;
    for (ChildProcess* c : children()) {
      if (!c->Ended()) {
        all = false;
        continue;
      }
      if (!first_end) first_end = Clock::now();
      const bool clean = *c->status() == 0;
      grace = std::max(grace, clean ? 10.0 : failure_grace);
    }
    if (all) break;
    // A coordinator that is stopped (SIGSTOP, a debugger) cannot end the job: the members
    // that lost it have ended; it is what failed.
    if (first_end && !coordinator_->Ended() && ProcessState(coordinator_->pid()) == 'T') {
      coordinator_hung_ =
          "was stopped (SIGSTOP or a debugger) and stopped answering; the "
          "workers lost it";
      EndAll();
      break;
    }
    if (first_end && Since(*first_end) > grace) {
      if (!coordinator_->Ended()) {
        coordinator_hung_ = "stopped answering (still running " + std::to_string(int(grace)) +
                            " s after the job ended)";
      }
      for (ChildProcess* c : children()) {
        if (!c->Ended()) {
          std::cerr << "flexmoe train: the " << c->name() << " still runs " << grace
                    << " s after the job ended; ending it" << std::endl;
        }
      }
      EndAll();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Outcome();
}

JobOutcome LocalJob::Outcome() {
  JobOutcome out;
  out.interrupted = interrupts > 1;
  for (ChildProcess* c : {workers_.get(), coordinator_.get(), loader_.get()}) {
    if (*c->status() != 0) {
      out.status = *c->status();
      break;
    }
  }
  try {
    const JobRecord job = ReadJobRecord(options_.run_dir);
    out.state = job.state;
    out.reason = job.reason;
    out.newest_checkpoint = job.newest_checkpoint;
    if (job.culprit && job.culprit->role == "worker") out.dead_workers.push_back(job.culprit->rank);
  } catch (const Error&) {
    // No job.json (the coordinator died first) or a torn one: the coordinator did not say.
  }
  if (out.state == "running" || out.state.empty()) {
    // The coordinator did not say: it is what died, or what hung.
    out.state = "failed";
    out.reason = "the coordinator " +
                 (coordinator_hung_.empty() ? coordinator_->Describe() : coordinator_hung_);
  }
  if (out.status != 0 && out.reason.empty()) {
    for (ChildProcess* c : children()) {
      if (*c->status() != 0) {
        out.reason = "the " + c->name() + " " + c->Describe();
        break;
      }
    }
  }
  if (out.newest_checkpoint.empty()) {
    out.newest_checkpoint = RunDir(options_.run_dir).NewestCheckpoint();
  }
  return out;
}

// The figures of a finished run (inference/report.h). The job has succeeded by then: a
// report that cannot be drawn (no gnuplot) is a warning naming the command to retry.
void DrawReport(const std::string& run_dir) {
  try {
    WriteReport(run_dir, &std::cout);
  } catch (const Error& e) {
    std::cerr << "flexmoe train: warning: no report (" << e.what()
              << "); draw it with: flexmoe report " << run_dir << std::endl;
  }
}

void Summarize(const LaunchOptions& options, const JobOutcome& out) {
  const std::string checkpoint =
      out.newest_checkpoint.empty() ? std::string("none") : out.newest_checkpoint;
  if (out.status == 0 && out.state == "preempted") {
    std::cout << "job stopped at a checkpoint; run directory " << options.run_dir
              << "; newest checkpoint " << checkpoint << "; continue with: flexmoe train --config "
              << options.config_path << " --set run.dir=" << options.run_dir << " --resume"
              << std::endl;
  } else if (out.status == 0) {
    std::cout << "job finished; run directory " << options.run_dir << std::endl;
  } else {
    std::cerr << "flexmoe train: the job failed (" << out.reason << "); run directory "
              << options.run_dir << "; newest checkpoint " << checkpoint << std::endl;
  }
}

}  // namespace

int DefaultThreadsPerWorker(int cores, int workers) {
  if (cores <= workers) return 1;
  return std::max(1, (cores - 1) / workers);  // one core for the loader and coordinator
}

int UsableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return CPU_COUNT(&set);
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int LaunchJob(const LaunchOptions& options) {
  if (options.workers < 1) Fail(ErrorCode::kInvalidArgument, "train: --workers must be at least 1");
  if (options.max_restarts < 0) {
    Fail(ErrorCode::kInvalidArgument, "train: --max-restarts must be at least 0");
  }
  std::filesystem::create_directories(options.run_dir);
  // One job per run directory: before anything of the job's is written there.
  RunLease::Options lease_options;
  lease_options.run_dir = options.run_dir;
  lease_options.timeout_s = options.config.cluster().heartbeat_timeout_s();
  lease_options.what = "flexmoe train";
  lease_options.on_lost = [](const LeaseHolder& by) {
    PrintErrorLine("flexmoe train: another job (host " + by.host + ", pid " +
                   std::to_string(by.pid) + ") took over the run directory's lease; " +
                   "stopping at once");
    interrupts = 2;
  };
  std::string taken_over;
  const RunLease lease(lease_options, &taken_over);
  if (!taken_over.empty()) std::cout << "flexmoe train: " << taken_over << std::endl;
  WriteFileAtomically(RunDir(options.run_dir).config(), ConfigToText(options.config));
  WriteTokenFile(RunDir(options.run_dir).job_token(), NewToken());
  CatchLauncherSignals();
  Attempt attempt{0, options.workers, options.resume, ""};
  while (true) {
    JobOutcome out = LocalJob(options, attempt).Run();
    const bool preempted = terminate_signal != 0 || interrupts > 0;
    if (out.status == 0 || preempted || attempt.number >= options.max_restarts) {
      Summarize(options, out);
      if (out.status == 0 && out.state != "preempted") DrawReport(options.run_dir);
      return out.status;
    }
    Attempt next;
    next.number = attempt.number + 1;
    next.workers = std::max<int>(1, attempt.workers - static_cast<int>(out.dead_workers.size()));
    next.resume = true;  // from the newest checkpoint, or from the start without one
    next.why = out.reason;
    std::cerr << "flexmoe train: restart " << next.number << " of " << options.max_restarts
              << " after: " << out.reason << "; "
              << (out.newest_checkpoint.empty() ? "from the start"
                                                : "from " + out.newest_checkpoint)
              << " on " << next.workers << " worker" << (next.workers == 1 ? "" : "s") << std::endl;
    attempt = next;
  }
}

}  // namespace flexmoe
