// `flexmoe train --workers N`, the whole job from one command: coordinator, loader and
// mpirun started and ended together; the run directory's contents; Ctrl-C (SIGINT) stops
// every process at a checkpoint; a killed worker with --max-restarts 1 finishes the job on
// the survivor from the newest checkpoint.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster/base/atomic_file.h"
#include "tests/testing/process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "trainer/checkpoint/resumable_manifest.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kBinary = FLEXMOE_BINARY;
const std::string kSource = FLEXMOE_SOURCE_DIR;
const std::vector<std::string> kEnv = {"OMPI_ALLOW_RUN_AS_ROOT=1",
                                       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"};

std::vector<Json> Records(const std::string& path, const std::string& event) {
  std::vector<Json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    Json j = Json::parse(line);
    if (j["event"] == event) out.push_back(j);
  }
  return out;
}

// The processes job.json lists that still run (zombies, ended but not yet reaped by
// their parent, do not), with their /proc/PID/stat lines.
std::vector<std::string> LiveMembers(const std::string& run) {
  std::vector<std::string> live;
  Json job = Json::parse(ReadFile(run + "/job.json"));
  for (const Json& m : job["members"]) {
    const pid_t pid = m["pid"].get<pid_t>();
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    const size_t close = stat.rfind(')');
    if (close != std::string::npos && stat.substr(close + 2, 1) == "Z") continue;
    live.push_back(stat);
  }
  return live;
}

// The pid of worker `rank` once job.json lists it running, else 0.
pid_t WorkerPid(const std::string& run, int rank, double timeout_s) {
  const auto start = Clock::now();
  while (std::chrono::duration<double>(Clock::now() - start).count() < timeout_s) {
    try {
      Json job = Json::parse(ReadFile(run + "/job.json"));
      for (const Json& m : job["members"]) {
        if (m["role"] == "worker" && m["rank"] == rank && m["state"] == "running") {
          return m["pid"].get<pid_t>();
        }
      }
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

class LaunchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    for (const char* command : {"synth", "prepare"}) {
      std::vector<std::string> argv = {kBinary, command};
      std::vector<std::string> common = Common(1);
      argv.insert(argv.end(), common.begin(), common.end());
      auto r = testing::RunCommand(argv, 120, kEnv);
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::vector<std::string> Common(int epochs) {
    std::vector<std::string> args = {"--config", kSource + "/configs/quickstart.textproto"};
    for (const std::string& s : std::vector<std::string>{
             "data.input=" + dir_->Path("raw"), "data.prepared_dir=" + dir_->Path("prepared"),
             "synth.num_samples=360", "training.epochs=" + std::to_string(epochs),
             "training.warmup_epochs=1", "training.batch_size=16", "model.hidden_dim=32",
             "model.patches=4", "metrics.log_every_steps=5"}) {
      args.push_back("--set");
      args.push_back(s);
    }
    return args;
  }
  static std::vector<std::string> Train(const std::string& run, int workers, int epochs,
                                        const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kBinary, "train", "--workers", std::to_string(workers)};
    std::vector<std::string> common = Common(epochs);
    argv.insert(argv.end(), common.begin(), common.end());
    argv.insert(argv.end(), {"--set", "run.dir=" + run});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  static testing::TempDir* dir_;
};
testing::TempDir* LaunchTest::dir_ = nullptr;

TEST_F(LaunchTest, OneCommandRunsTheWholeJobAndLeavesTheRunDirectory) {
  const std::string run = dir_->Path("whole");
  // OMP_WAIT_POLICY unset (empty): every process sets PASSIVE itself (launch/wait_policy.h).
  std::vector<std::string> env = kEnv;
  env.push_back("OMP_WAIT_POLICY=");
  auto r = testing::RunCommand(Train(run, 2, 2), 180, env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 workers x 1 thread"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("OpenMP wait policy PASSIVE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("overall"), std::string::npos) << r.output;  // the results table
  EXPECT_NE(r.output.find("job finished; run directory " + run), std::string::npos) << r.output;
  for (const char* f : {"config.textproto", "job.json", "job.token", "metrics.jsonl",
                        "coordinator.log", "loader.log", "checkpoint/manifest.json"}) {
    EXPECT_TRUE(fs::exists(run + "/" + f)) << f;
  }
  EXPECT_FALSE(fs::is_empty(run + "/tensorboard"));
  struct stat token;
  ASSERT_EQ(::stat((run + "/job.token").c_str(), &token), 0);
  EXPECT_EQ(token.st_mode & 0777, 0600u);
  Json job = Json::parse(ReadFile(run + "/job.json"));
  EXPECT_EQ(job["state"], "finished");
  EXPECT_EQ(job["members"].size(), 3u);
  EXPECT_EQ(LiveMembers(run), std::vector<std::string>{});
  EXPECT_EQ(Records(run + "/metrics.jsonl", "epoch").size(), 2u);
  EXPECT_EQ(Records(run + "/metrics.jsonl", "test").size(), 1u);
}

TEST_F(LaunchTest, OneWorkerRunsTheSameRoles) {
  const std::string run = dir_->Path("one");
  auto r = testing::RunCommand(Train(run, 1, 1), 180, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Json job = Json::parse(ReadFile(run + "/job.json"));
  EXPECT_EQ(job["members"].size(), 2u);  // the loader and the worker
  EXPECT_EQ(job["workers"], 1);
}

TEST_F(LaunchTest, InterruptStopsEveryProcessAtACheckpoint) {
  const std::string run = dir_->Path("interrupt");
  testing::Process train(Train(run, 2, 500), dir_->Path("interrupt.log"), kEnv);
  ASSERT_FALSE(train.WaitForLine("epoch 1 done", 120).empty()) << train.Log();
  const auto start = Clock::now();
  train.Signal(SIGINT);
  EXPECT_EQ(train.Wait(60), 0) << train.Log();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 15);
  EXPECT_NE(train.Log().find("job stopped at a checkpoint; run directory " + run +
                             "; newest checkpoint " + run + "/checkpoints/step-"),
            std::string::npos)
      << train.Log();
  EXPECT_NE(train.Log().find("--resume"), std::string::npos);
  EXPECT_EQ(LiveMembers(run), std::vector<std::string>{});
  EXPECT_EQ(Json::parse(ReadFile(run + "/job.json"))["state"], "preempted");
}

TEST_F(LaunchTest, KilledWorkerIsRestartedFromTheNewestCheckpointOnTheSurvivor) {
  const std::string run = dir_->Path("restart");
  testing::Process train(
      Train(run, 2, 40, {"--max-restarts", "1", "--set", "checkpoint.every_steps=10"}),
      dir_->Path("restart.log"), kEnv);
  const pid_t victim = WorkerPid(run, 1, 60);
  ASSERT_GT(victim, 0) << train.Log();
  // Once a checkpoint exists, worker 1 dies.
  const auto start = Clock::now();
  while (CompleteCheckpoints(run + "/checkpoints").empty() &&
         std::chrono::duration<double>(Clock::now() - start).count() < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(CompleteCheckpoints(run + "/checkpoints").empty()) << train.Log();
  ::kill(victim, SIGKILL);
  EXPECT_EQ(train.Wait(300), 0) << train.Log();
  EXPECT_NE(train.Log().find("restart 1 of 1 after: worker 1"), std::string::npos) << train.Log();
  EXPECT_NE(train.Log().find("on 1 worker"), std::string::npos) << train.Log();
  EXPECT_NE(train.Log().find("resuming from " + run + "/checkpoints/step-"), std::string::npos)
      << train.Log();
  const std::vector<Json> restarts = Records(run + "/metrics.jsonl", "restart");
  ASSERT_EQ(restarts.size(), 1u);
  EXPECT_EQ(restarts[0]["attempt"], 1);
  EXPECT_EQ(restarts[0]["workers"], 1);
  EXPECT_NE(restarts[0]["reason"].get<std::string>().find("worker 1"), std::string::npos);
  EXPECT_EQ(Records(run + "/metrics.jsonl", "test").size(), 1u);
  Json job = Json::parse(ReadFile(run + "/job.json"));
  EXPECT_EQ(job["state"], "finished");
  EXPECT_EQ(job["workers"], 1);
}

TEST_F(LaunchTest, WithoutRestartsAKilledWorkerFailsTheJobNamingIt) {
  const std::string run = dir_->Path("no-restart");
  testing::Process train(Train(run, 2, 500), dir_->Path("no-restart.log"), kEnv);
  const pid_t victim = WorkerPid(run, 1, 60);
  ASSERT_GT(victim, 0) << train.Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(victim, SIGKILL);
  const int status = train.Wait(30);
  EXPECT_NE(status, 0) << train.Log();
  EXPECT_NE(status, -1) << train.Log();
  EXPECT_NE(train.Log().find("the job failed: worker 1"), std::string::npos) << train.Log();
  EXPECT_EQ(LiveMembers(run), std::vector<std::string>{});
}

// One job per run directory: a second `flexmoe train` (with --resume too) on the directory of
// a running job is refused with exit 2 naming the holder, and writes nothing there.
TEST_F(LaunchTest, ASecondJobOnALiveRunDirectoryIsRefused) {
  const std::string run = dir_->Path("leased");
  testing::Process first(Train(run, 1, 500), dir_->Path("leased.log"), kEnv);
  ASSERT_FALSE(first.WaitForLine("epoch 1 done", 120).empty()) << first.Log();
  const std::string token = ReadFile(run + "/job.token");
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"--resume"}}) {
    auto second = testing::RunCommand(Train(run, 1, 1, extra), 60, kEnv);
    EXPECT_EQ(second.exit_code, 2) << second.output;
    EXPECT_NE(second.output.find("is in use by a running job (host "), std::string::npos)
        << second.output;
    EXPECT_NE(second.output.find("(flexmoe train)"), std::string::npos) << second.output;
  }
  EXPECT_EQ(ReadFile(run + "/job.token"), token);
  first.Signal(SIGINT);
  EXPECT_EQ(first.Wait(60), 0) << first.Log();
  EXPECT_FALSE(fs::exists(run + "/job.lease"));
}

// A lease judged by whether its counter moves, not by wall clocks: a holder whose wall clock
// runs 60 s behind or ahead (libfaketime, preloaded) keeps it against a contender with the
// true clock, and a contender whose clock is off refuses a live holder as well. The
// monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC), as on a real host whose
// wall clock is wrong: libfaketime's default also shifts CLOCK_MONOTONIC, whose absolute
// deadlines glibc's condition variables then hand to the kernel's true clock.
TEST_F(LaunchTest, ALeaseHoldsWhateverTheHostsClockSays) {
  const std::string library = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
  ASSERT_TRUE(fs::exists(library)) << "launch/setup.sh installs faketime";
  const std::vector<std::string> lease = {kBinary, "lease", "--config",
                                          kSource + "/configs/quickstart.textproto"};
  auto with = [](std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  for (const std::string skew : {"-60s", "+60s"}) {
    const std::vector<std::string> faked = {"LD_PRELOAD=" + library, "FAKETIME=" + skew,
                                            "FAKETIME_DONT_FAKE_MONOTONIC=1"};
    for (bool skewed_holder : {true, false}) {
      SCOPED_TRACE(skew + (skewed_holder ? " on the holder" : " on the contender"));
      const std::string run = dir_->Path("clock" + skew + (skewed_holder ? "h" : "c"));
      fs::create_directories(run);
      testing::Process holder(with(lease, {"--set", "run.dir=" + run, "--what", "holder",
                                           "--watch-pid", std::to_string(::getpid())}),
                              run + ".holder.log",
                              skewed_holder ? faked : std::vector<std::string>{});
      ASSERT_FALSE(holder.WaitForLine("lease held on", 30).empty()) << holder.Log();
      const auto start = Clock::now();
      auto contender = testing::RunCommand(with(lease, {"--set", "run.dir=" + run}), 30,
                                           skewed_holder ? std::vector<std::string>{} : faked);
      EXPECT_EQ(contender.exit_code, 2) << contender.output;
      EXPECT_NE(contender.output.find("is in use by a running job (host "), std::string::npos)
          << contender.output;
      EXPECT_NE(contender.output.find("(holder)"), std::string::npos) << contender.output;
      // Refused once the holder's counter moved: within one renewal interval (timeout / 4).
      EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
      EXPECT_TRUE(holder.running());
      holder.Signal(SIGTERM);
      EXPECT_EQ(holder.Wait(30), 0) << holder.Log();
      EXPECT_FALSE(fs::exists(run + "/job.lease"));
    }
  }
}

// A coordinator stopped with SIGSTOP: the workers lose it and end; the launcher names the
// stopped coordinator as the cause (not its own kill of it), well within the heartbeat
// timeout + 10 s.
// A coordinator that cannot start (its live page's address is not on this host) stops the
// start: no loader or worker is launched, and the last line names it and its reason.
TEST_F(LaunchTest, ACoordinatorThatCannotStartStopsTheStart) {
  const std::string run = dir_->Path("no-start");
  auto r = testing::RunCommand(Train(run, 2, 1, {"--set", "cluster.http_listen=10.99.99.99:0"}), 60,
                               kEnv);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("the job failed to start: the coordinator did not start (exit 1)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("cannot listen on 10.99.99.99:0"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(run + "/loader.log")) << "a loader was started";
  EXPECT_FALSE(fs::exists(run + "/job.lease")) << "the lease outlived the job";
  EXPECT_FALSE(fs::exists(run + "/web.token")) << "a token for a page that never served";
}

TEST_F(LaunchTest, AStoppedCoordinatorIsNamedAsTheCause) {
  const std::string run = dir_->Path("stopped-coordinator");
  testing::Process train(Train(run, 2, 500), dir_->Path("stopped-coordinator.log"), kEnv);
  ASSERT_GT(WorkerPid(run, 1, 60), 0) << train.Log();
  // The coordinator's pid (job.json lists the members, not the coordinator): the process
  // whose command line is this run's coordinator.
  pid_t pid = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t first = cmdline.find('\0');  // argv[1] is the subcommand
    if (first != std::string::npos &&
        cmdline.compare(first + 1, 12, std::string("coordinator\0", 12)) == 0 &&
        cmdline.find("run.dir=" + run) != std::string::npos) {
      pid = static_cast<pid_t>(std::stol(name));
    }
  }
  ASSERT_GT(pid, 0) << train.Log();
  const auto start = Clock::now();
  ::kill(pid, SIGSTOP);
  const int status = train.Wait(60);
  ::kill(pid, SIGCONT);
  EXPECT_NE(status, 0) << train.Log();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 14) << train.Log();
  EXPECT_NE(train.Log().find("the job failed: the coordinator was stopped (SIGSTOP"),
            std::string::npos)
      << train.Log();
}

}  // namespace
}  // namespace flexmoe
