// The control-plane load test (issue 37; bench/control_plane.sh runs it): a real
// `flexmoe coordinator` with N simulated workers (real CoordinatorClients in a few
// processes, control_plane_sim.h) heartbeating and reporting a step record every second.
// Two jobs: the first runs steadily for --seconds with one member stopped for 2 s of every
// 3 s (slow but live: no verdict may come), then another member is stopped (SIGSTOP: seen
// only by its silence); the second job runs briefly, then a member is killed (kill -9). It
// prints the coordinator's figures and, last, one JSON object.
//
//   build/bench/control_plane_bench --members 4096 --flexmoe build/flexmoe [--seconds 60]
#include <glog/logging.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/control_plane_job.h"
#include "bench/control_plane_sim.h"
#include "cluster/base/error.h"
#include "cluster/net/job_token.h"
#include "launch/cli/args.h"
#include "launch/cli/command_spec.h"

namespace flexmoe::bench {
namespace {

using Json = nlohmann::json;

Args Parse(int argc, char** argv) {
  const CommandSpec spec = {
      "control_plane_bench",
      "",
      "The coordinator under N simulated members.",
      "",
      "",
      false,
      true,
      {{"members", "N", "simulated workers (default 64)"},
       {"flexmoe", "PATH", "the flexmoe program (default build/flexmoe)"},
       {"config", "FILE", "the job's config (default configs/quickstart.textproto)"},
       {"seconds", "S", "the steady phase (default 30)"},
       {"processes", "P", "processes simulating the members (default 4)"},
       {"out", "DIR", "where the jobs' logs and run directories go (default a new temp dir)"},
       {"simulate", "", "(internal) simulate members", FlagSpec::Kind::kSwitch},
       {"address", "HOST:PORT", "(--simulate) the coordinator"},
       {"token", "TOKEN", "(--simulate) the job token"},
       {"first", "R", "(--simulate) the first rank"},
       {"count", "K", "(--simulate) members"},
       {"world", "N", "(--simulate) the world size"},
       {"out-file", "FILE", "(--simulate) where the members' ends go"}}};
  std::vector<char*> with_command = {argv[0], const_cast<char*>("control_plane_bench")};
  with_command.insert(with_command.end(), argv + 1, argv + argc);
  return ParseArgs(spec, static_cast<int>(with_command.size()), with_command.data());
}

int Simulate(const Args& args) {
  SimulationOptions o;
  o.address = args.Get("address");
  o.token = args.Get("token");
  o.config = args.Get("config");
  o.overrides = args.overrides;
  o.first = args.GetInt("first", 0);
  o.count = args.GetInt("count", 0);
  o.world = args.GetInt("world", 0);
  o.out = args.Get("out-file");
  return SimulateMembers(o);
}

// A distribution's gauges from /metrics: {"median": v, "p99": v, "max": v} of `name`.
std::map<std::string, double> Quantiles(const std::string& metrics, const std::string& name) {
  std::map<std::string, double> out;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const std::string lead = name + "{stat=\"";
    if (line.rfind(lead, 0) != 0) continue;
    const size_t end = line.find('"', lead.size());
    out[line.substr(lead.size(), end - lead.size())] = std::stod(line.substr(line.rfind(' ') + 1));
  }
  return out;
}

// A sample's value from /metrics (its whole name, labels included), or -1.
double Gauge(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

JobSetup Setup(const Args& args, const std::string& dir, const std::string& token_file) {
  JobSetup s;
  s.self = std::filesystem::read_symlink("/proc/self/exe").string();
  s.flexmoe = std::filesystem::absolute(args.Get("flexmoe", "build/flexmoe")).string();
  s.config = std::filesystem::absolute(args.Get("config", "configs/quickstart.textproto"));
  s.members = args.GetInt("members", 64);
  s.processes = args.GetInt("processes", 4);
  s.dir = dir;
  std::ifstream(token_file) >> s.token;
  s.overrides = {"cluster.workers=" + std::to_string(s.members),
                 "cluster.expert_parallel_degree=" + std::string(s.members % 8 ? "0" : "8"),
                 "cluster.job_token_source=file:" + token_file, "cluster.http_listen=127.0.0.1:0",
                 "run.dir=" + dir + "/run"};
  s.overrides.insert(s.overrides.end(), args.overrides.begin(), args.overrides.end());
  return s;
}

void PrintSteady(const SteadyFigures& f, int members) {
  std::printf(
      "%d members: registered in %.1f s; over %.0f s steady: coordinator %.3f cores (the "
      "simulated members %.2f), RSS %.0f MB (peak %.0f MB); %.0f reports/s, %.2f step lines/s; "
      "metrics.jsonl %.1f MB/h, TensorBoard %.1f MB/h; job.json %.0f kB; /api/job %.0f ms, "
      "/metrics %.0f ms; the page in headless Chromium %.2f s (%s)\n",
      members, f.register_s, f.seconds, f.cpu_cores, f.simulators_cpu_cores, f.rss_mb,
      f.peak_rss_mb, f.reports_per_s, f.step_lines_per_s, f.metrics_mb_per_hour,
      f.tensorboard_mb_per_hour, f.job_json_kb, f.api_job_ms, f.metrics_ms, f.page_s,
      f.page_ok ? "showed the members" : "did NOT show the members");
}

void PrintFault(const char* what, const FaultFigures& f) {
  std::printf("%s: first member told after %.2f s, all %d of %d after %.2f s: %s\n", what,
              f.detect_s, f.told, f.expected, f.all_told_s, f.verdict.c_str());
}

int Drive(const Args& args) {
  std::string dir = args.Get("out");
  if (dir.empty()) {
    char pattern[] = "/tmp/control-plane-XXXXXX";
    dir = ::mkdtemp(pattern);
  }
  std::filesystem::create_directories(dir);
  dir = std::filesystem::absolute(dir);
  const std::string token_file = dir + "/token";
  WriteTokenFile(token_file, NewToken());
  const double seconds = std::stod(args.Get("seconds", "30"));
  Json out;
  SteadyFigures steady;
  FaultFigures stop, kill;
  {
    SimulatedJob job(Setup(args, dir + "/stop", token_file));
    job.Start();
    steady = job.Steady(seconds);
    PrintSteady(steady, args.GetInt("members", 64));
    if (steady.false_verdict) std::printf("FALSE VERDICT:\n%s\n", steady.verdict.c_str());
    if (!steady.false_verdict) stop = job.Fault(SIGSTOP);
    PrintFault("a member stopped (SIGSTOP)", stop);
  }
  {
    SimulatedJob job(Setup(args, dir + "/kill", token_file));
    job.Start();
    const SteadyFigures brief = job.Steady(5);
    steady.false_verdict = steady.false_verdict || brief.false_verdict;
    if (!brief.false_verdict) kill = job.Fault(SIGKILL);
    PrintFault("a member killed (kill -9)", kill);
  }
  const auto lag = Quantiles(steady.metrics, "flexmoe_coordinator_loop_lag_seconds");
  const auto gap = Quantiles(steady.metrics, "flexmoe_coordinator_heartbeat_gap_seconds");
  const auto job_json = Quantiles(steady.metrics, "flexmoe_coordinator_job_json_seconds");
  auto ms = [](const std::map<std::string, double>& q, const char* key) {
    return q.count(key) ? q.at(key) * 1000 : -1.0;
  };
  std::printf(
      "loop lag (what a heartbeat waits) p50 %.2f ms, p99 %.1f ms, max %.1f ms; heartbeat "
      "gaps p50 %.3f s, p99 %.3f s, max %.3f s; job.json build p50 %.1f ms, max %.1f ms, "
      "write (its own thread) max %.1f ms\n",
      ms(lag, "median"), ms(lag, "p99"), ms(lag, "max"), ms(gap, "median") / 1000,
      ms(gap, "p99") / 1000, ms(gap, "max") / 1000, ms(job_json, "median"), ms(job_json, "max"),
      Gauge(steady.metrics, "flexmoe_coordinator_job_json_write_max_seconds") * 1000);
  out["members"] = args.GetInt("members", 64);
  out["false_verdicts"] = steady.false_verdict ? 1 : 0;
  out["kill_detect_s"] = kill.detect_s;
  out["all_told_s"] = kill.all_told_s;
  out["stop_detect_s"] = stop.detect_s;
  out["stop_all_told_s"] = stop.all_told_s;
  out["told"] = stop.told + kill.told;
  out["expected_told"] = stop.expected + kill.expected;
  out["heartbeat_p50_ms"] = ms(lag, "median");
  out["heartbeat_p99_ms"] = ms(lag, "p99");
  out["heartbeat_max_ms"] = ms(lag, "max");
  out["heartbeat_gap_p99_s"] = ms(gap, "p99") / 1000;
  out["heartbeat_gap_max_s"] = ms(gap, "max") / 1000;
  out["job_json_build_max_ms"] = ms(job_json, "max");
  const double write_s = Gauge(steady.metrics, "flexmoe_coordinator_job_json_write_max_seconds");
  out["job_json_write_max_ms"] = write_s >= 0 ? write_s * 1000 : -1;
  out["job_json_kb"] = steady.job_json_kb;
  out["api_job_ms"] = steady.api_job_ms;
  out["metrics_scrape_ms"] = steady.metrics_ms;
  out["simulators_cpu_cores"] = steady.simulators_cpu_cores;
  out["page_load_s"] = steady.page_s;
  out["page_ok"] = steady.page_ok;
  out["coordinator_cpu_cores"] = steady.cpu_cores;
  out["coordinator_rss_mb"] = steady.peak_rss_mb;
  out["register_s"] = steady.register_s;
  out["reports_per_s"] = steady.reports_per_s;
  out["metrics_mb_per_hour"] = steady.metrics_mb_per_hour;
  out["tensorboard_mb_per_hour"] = steady.tensorboard_mb_per_hour;
  out["steady_s"] = steady.seconds;
  std::cout << out.dump() << std::endl;
  const bool page_failed = steady.page_s >= 0 && !steady.page_ok;
  const bool untold = stop.told + kill.told != stop.expected + kill.expected;
  return steady.false_verdict || kill.detect_s < 0 || stop.detect_s < 0 || untold || page_failed
             ? 1
             : 0;
}

}  // namespace
}  // namespace flexmoe::bench

int main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  return flexmoe::RunReportingErrors("control_plane_bench", [&] {
    const flexmoe::Args args = flexmoe::bench::Parse(argc, argv);
    return args.Has("simulate") ? flexmoe::bench::Simulate(args) : flexmoe::bench::Drive(args);
  });
}
