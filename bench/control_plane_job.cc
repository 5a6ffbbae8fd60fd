// One simulated job: the coordinator, the simulated members, the steady phase and the fault
// (control_plane_job.h).
#include "bench/control_plane_job.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench/control_plane_sim.h"
#include "cluster/base/error.h"
#include "tests/web/http_client.h"

namespace flexmoe::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A process's user + system CPU time (/proc/PID/stat).
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) {
      stime = std::stod(field);
      break;
    }
  }
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A line of /proc/PID/status ("VmRSS:", "VmHWM:") in MB.
double StatusMb(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return 0;
}

// Bytes of the files under `dir` whose name contains `part`.
double BytesUnder(const std::string& dir, const std::string& part) {
  double bytes = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().filename().string().find(part) != std::string::npos) {
      bytes += static_cast<double>(it->file_size(ec));
    }
  }
  return bytes;
}

int64_t LinesOf(const std::string& path) {
  std::ifstream in(path);
  return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
}

// The coordinator's figures at one moment.
struct Sample {
  Clock::time_point at = Clock::now();
  double cpu = 0, metrics = 0, tensorboard = 0;
  int64_t lines = 0;
};

}  // namespace

SimulatedJob::SimulatedJob(JobSetup setup) : setup_(std::move(setup)) {
  fs::remove_all(setup_.dir);  // this job's own directory, from an earlier run
  fs::create_directories(setup_.dir);
  run_dir_ = setup_.dir + "/run";
}

SimulatedJob::~SimulatedJob() {
  for (auto& s : simulators_) s->Signal(SIGKILL);
  if (coordinator_) coordinator_->Signal(SIGKILL);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (auto& s : simulators_) {
    while (!s->Ended() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  while (coordinator_ && !coordinator_->Ended() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void SimulatedJob::Start() {
  std::vector<std::string> argv = {setup_.flexmoe, "coordinator", "--config", setup_.config};
  for (const std::string& o : setup_.overrides) argv.insert(argv.end(), {"--set", o});
  coordinator_ = std::make_unique<ChildProcess>(
      ChildSpec{"coordinator", argv, setup_.dir + "/coordinator.log", 0});
  address_ = coordinator_->WaitForLogLine("listening on ", 60);
  std::string http = coordinator_->WaitForLogLine("live page on http://", 10);
  http_ = http.substr(0, http.find('/'));
  std::ifstream token(run_dir_ + "/web.token");
  std::getline(token, http_token_);
  const auto start = Clock::now();
  // Ranks 0..N-3 in `processes` processes; N-2 the slow member; N-1 the fault member.
  const int plain = setup_.members - 2;
  for (int p = 0; p < setup_.processes; ++p) {
    const int first = plain * p / setup_.processes, last = plain * (p + 1) / setup_.processes;
    simulators_.push_back(StartSimulator("members-" + std::to_string(p), first, last - first));
  }
  simulators_.push_back(StartSimulator("slow", plain, 1));
  simulators_.push_back(StartSimulator("fault", plain + 1, 1));
  WaitForMembers(300);
  register_s_ = SecondsSince(start);
}

std::unique_ptr<ChildProcess> SimulatedJob::StartSimulator(const std::string& name, int first,
                                                           int count) {
  std::vector<std::string> argv = {setup_.self,  "--simulate",
                                   "--address",  address_,
                                   "--config",   setup_.config,
                                   "--token",    setup_.token,
                                   "--first",    std::to_string(first),
                                   "--count",    std::to_string(count),
                                   "--world",    std::to_string(setup_.members),
                                   "--out-file", setup_.dir + "/" + name + ".ends"};
  for (const std::string& o : setup_.overrides) argv.insert(argv.end(), {"--set", o});
  return std::make_unique<ChildProcess>(ChildSpec{name, argv, setup_.dir + "/" + name + ".log", 0});
}

void SimulatedJob::WaitForMembers(double timeout_s) {
  const auto start = Clock::now();
  for (auto& s : simulators_) {
    s->WaitForLogLine("registered ", std::max(1.0, timeout_s - SecondsSince(start)));
  }
}

std::string SimulatedJob::HttpGetTimed(const std::string& path, double* ms) const {
  const auto start = Clock::now();
  const auto r = testing::HttpGet(http_, path, "Authorization: Bearer " + http_token_ + "\r\n");
  *ms = SecondsSince(start) * 1000;
  return r.status == 200 ? r.body : "";
}

SteadyFigures SimulatedJob::Steady(double seconds) {
  SteadyFigures f;
  f.register_s = register_s_;
  ChildProcess& slow = *simulators_[simulators_.size() - 2];
  const pid_t pid = coordinator_->pid();
  const std::string metrics = run_dir_ + "/metrics.jsonl";
  auto sample = [&] {
    Sample s;
    s.cpu = CpuSeconds(pid);
    s.metrics = BytesUnder(run_dir_, "metrics.jsonl");
    s.tensorboard = BytesUnder(run_dir_, "tfevents");
    s.lines = LinesOf(metrics);
    return s;
  };
  const Sample first = sample();
  const double simulators_first = SimulatorsCpu();
  bool paused = false;
  while (SecondsSince(first.at) < seconds && !coordinator_->Ended()) {
    const double t = std::fmod(SecondsSince(first.at), setup_.slow_every_s);
    if ((t < setup_.slow_pause_s) != paused) {
      paused = !paused;
      slow.Signal(paused ? SIGSTOP : SIGCONT);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  slow.Signal(SIGCONT);
  if (coordinator_->Ended()) {
    f.false_verdict = true;
    f.verdict = coordinator_->LogTail(3);
    return f;
  }
  f.rss_mb = StatusMb(pid, "VmRSS:");
  f.peak_rss_mb = StatusMb(pid, "VmHWM:");
  f.metrics = HttpGetTimed("/metrics", &f.metrics_ms);
  HttpGetTimed("/api/job", &f.api_job_ms);
  const Sample last = sample();
  f.seconds = std::chrono::duration<double>(last.at - first.at).count();
  f.cpu_cores = (last.cpu - first.cpu) / f.seconds;
  f.simulators_cpu_cores = (SimulatorsCpu() - simulators_first) / f.seconds;
  LoadPage(&f);
  f.metrics_mb_per_hour = (last.metrics - first.metrics) / 1e6 / f.seconds * 3600;
  f.tensorboard_mb_per_hour = (last.tensorboard - first.tensorboard) / 1e6 / f.seconds * 3600;
  f.step_lines_per_s = static_cast<double>(last.lines - first.lines) / f.seconds;
  f.reports_per_s = f.step_lines_per_s * setup_.members;
  f.job_json_kb = BytesUnder(run_dir_, "job.json") / 1e3;
  return f;
}

double SimulatedJob::SimulatorsCpu() const {
  double seconds = 0;
  for (const auto& s : simulators_) seconds += CpuSeconds(s->pid());
  return seconds;
}

void SimulatedJob::LoadPage(SteadyFigures* f) const {
  if (std::system("command -v chromium > /dev/null") != 0) return;
  const std::string dom = setup_.dir + "/page.html";
  const std::string command =
      "chromium --headless=new --no-sandbox --disable-gpu --user-data-dir=" + setup_.dir +
      "/chromium --virtual-time-budget=3000 --dump-dom "
      "'http://" +
      http_ + "/?token=" + http_token_ + "' 2>/dev/null > " + dom;
  const auto start = Clock::now();
  const int status = std::system(("timeout 60 " + command).c_str());
  f->page_s = SecondsSince(start);
  std::ifstream in(dom);
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  f->page_ok =
      status == 0 && html.find(std::to_string(setup_.members) + " members: ") != std::string::npos;
}

FaultFigures SimulatedJob::Fault(int signal) {
  FaultFigures f;
  ChildProcess& victim = *simulators_.back();
  const int64_t fault_ns = SteadyNowNs();
  victim.Signal(signal);
  const auto start = Clock::now();
  const double bound = setup_.heartbeat_timeout_s + 30;
  while (!coordinator_->Ended() && SecondsSince(start) < bound) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  victim.Signal(SIGKILL);
  // Every other member, told to stop, writes when it was told and exits.
  for (size_t i = 0; i + 1 < simulators_.size(); ++i) {
    while (!simulators_[i]->Ended() && SecondsSince(start) < bound + 30) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    simulators_[i]->Signal(SIGTERM);
  }
  for (size_t i = 0; i + 1 < simulators_.size(); ++i) {
    while (!simulators_[i]->Ended() && SecondsSince(start) < bound + 60) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  CollectEnds(fault_ns, &f);
  return f;
}

void SimulatedJob::CollectEnds(int64_t fault_ns, FaultFigures* f) {
  int64_t first = 0, last = 0;
  for (size_t i = 0; i + 1 < simulators_.size(); ++i) {
    std::ifstream in(setup_.dir + "/" + simulators_[i]->name() + ".ends");
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      int rank = 0;
      int64_t ns = 0;
      std::string how;
      fields >> rank >> ns >> how;
      if (how != "stopped" || ns < fault_ns) continue;
      ++f->told;
      first = first == 0 ? ns : std::min(first, ns);
      last = std::max(last, ns);
      if (f->verdict.empty()) std::getline(fields >> std::ws, f->verdict);
    }
  }
  // Every member but the fault one, whether or not its process lived to write its file.
  f->expected = setup_.members - 1;
  if (first > 0) {
    f->detect_s = static_cast<double>(first - fault_ns) / 1e9;
    f->all_told_s = static_cast<double>(last - fault_ns) / 1e9;
  }
}

}  // namespace flexmoe::bench
