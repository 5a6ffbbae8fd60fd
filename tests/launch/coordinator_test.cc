// The coordinator with real processes: `flexmoe coordinator`, a `flexmoe loader` and two
// `flexmoe worker` ranks under mpirun, on loopback. Whichever member is killed (SIGKILL) or
// hangs (SIGSTOP, which mpirun cannot see), every process of the job ends within the
// heartbeat timeout plus 5 s, non-zero, naming who died; a worker whose config computes
// something else is refused by name and field; garbage on the coordinator's and the
// loader's ports (wrong token, random bytes, an all-0xff header, a silent connection, 200
// quick connects) changes nothing: the job finishes with the losses of a quiet run.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "cluster/base/atomic_file.h"
#include "cluster/metrics/tensorboard.h"
#include "tests/data_loader/loader_test_util.h"
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
const std::vector<std::string> kEnv = {"FLEXMOE_JOB_TOKEN=coordinator-test-token",
                                       "OMPI_ALLOW_RUN_AS_ROOT=1",
                                       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMP_NUM_THREADS=1"};
constexpr double kHeartbeatTimeout = 4;  // the default

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A job: coordinator, loader, mpirun with 2 workers, each logging into the run directory.
struct Job {
  std::string dir;
  std::unique_ptr<testing::Process> coordinator, loader, workers;
  std::string coordinator_address, loader_address;

  Job(const std::string& dir, const std::vector<std::string>& common,
      const std::vector<std::string>& worker_extra = {})
      : dir(dir) {
    fs::create_directories(dir);
    std::vector<std::string> argv = {kBinary, "coordinator"};
    argv.insert(argv.end(), common.begin(), common.end());
    coordinator = std::make_unique<testing::Process>(argv, dir + "/coordinator.log", kEnv);
    coordinator_address = coordinator->WaitForLine("listening on ", 30);
    argv = {kBinary, "loader", "--set", "cluster.coordinator=" + coordinator_address};
    argv.insert(argv.end(), common.begin(), common.end());
    loader = std::make_unique<testing::Process>(argv, dir + "/loader.log", kEnv);
    loader_address = loader->WaitForLine("listening on ", 30);
    argv = {"mpirun", "-np", "2", "--oversubscribe", kBinary, "worker"};
    argv.insert(argv.end(), common.begin(), common.end());
    for (const std::string& s : {"cluster.coordinator=" + coordinator_address,
                                 "cluster.loader_addresses=" + loader_address}) {
      argv.push_back("--set");
      argv.push_back(s);
    }
    argv.insert(argv.end(), worker_extra.begin(), worker_extra.end());
    workers = std::make_unique<testing::Process>(argv, dir + "/workers.log", kEnv);
  }

  // The pid of a running member from job.json, once the two workers have registered.
  pid_t Pid(const std::string& role, int rank, double timeout_s = 60) const {
    const auto start = Clock::now();
    while (Since(start) < timeout_s) {
      try {
        Json job = Json::parse(ReadFile(dir + "/run/job.json"));
        int workers_running = 0;
        pid_t pid = 0;
        for (const Json& m : job["members"]) {
          workers_running += m["role"] == "worker" && m["state"] == "running";
          if (m["role"] == role && m["rank"] == rank) pid = m["pid"].get<pid_t>();
        }
        if (workers_running == 2 && pid > 0) return pid;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }

  // Every process's exit status, waiting at most `timeout_s` from now for each.
  std::vector<int> WaitAll(double timeout_s) {
    const auto start = Clock::now();
    std::vector<int> status;
    for (auto* p : {coordinator.get(), loader.get(), workers.get()}) {
      status.push_back(p->Wait(std::max(0.0, timeout_s - Since(start))));
    }
    return status;
  }
};

class CoordinatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    for (const char* command : {"synth", "prepare"}) {
      std::vector<std::string> argv = {kBinary, command};
      std::vector<std::string> common = Common("unused", 1);
      argv.insert(argv.end(), common.begin(), common.end());
      auto r = testing::RunCommand(argv, 120, kEnv);
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::vector<std::string> Common(const std::string& run, int epochs) {
    std::vector<std::string> sets = {"data.input=" + dir_->Path("raw"),
                                     "data.prepared_dir=" + dir_->Path("prepared"),
                                     "synth.num_samples=360",
                                     "training.epochs=" + std::to_string(epochs),
                                     "training.warmup_epochs=1",
                                     "training.batch_size=16",
                                     "model.hidden_dim=32",
                                     "model.patches=4",
                                     "metrics.log_every_steps=0",
                                     "cluster.job_token_source=env:FLEXMOE_JOB_TOKEN",
                                     "run.dir=" + dir_->Path(run) + "/run"};
    std::vector<std::string> args = {"--config", kSource + "/configs/quickstart.textproto"};
    for (const std::string& s : sets) {
      args.push_back("--set");
      args.push_back(s);
    }
    return args;
  }

  // Kills or stops one member of a long job and checks that the job ends in time, every
  // process non-zero, with `culprit` named by the coordinator and the survivors.
  static void ExpectJobEndsNaming(const std::string& name, const std::string& role, int signal,
                                  const std::string& culprit) {
    Job job(dir_->Path(name), Common(name, 500));
    pid_t victim = 0;
    if (role == "coordinator") {
      ASSERT_GT(job.Pid("worker", 1), 0) << job.coordinator->Log();
      victim = job.coordinator->pid();
    } else {
      victim = job.Pid(role, role == "worker" ? 1 : 0);
    }
    ASSERT_GT(victim, 0) << job.coordinator->Log();
    // Training is under way: an epoch has ended.
    ASSERT_FALSE(job.workers->WaitForLine("epoch 1 done", 60).empty()) << job.workers->Log();
    const auto start = Clock::now();
    ::kill(victim, signal);
    std::vector<int> status = job.WaitAll(kHeartbeatTimeout + 5);
    const double took = Since(start);
    const std::vector<std::string> names = {"coordinator", "loader", "workers"};
    for (size_t i = 0; i < status.size(); ++i) {
      EXPECT_NE(status[i], -1) << name << ": the " << names[i] << " still runs after " << took
                               << " s";
      EXPECT_NE(status[i], 0) << name << ": the " << names[i] << " exited 0";
    }
    EXPECT_LT(took, kHeartbeatTimeout + 5) << name;
    if (role != "coordinator") {
      EXPECT_NE(job.coordinator->Log().find("stopping the job: " + culprit), std::string::npos)
          << job.coordinator->Log();
    }
    if (role != "loader") {
      EXPECT_NE(job.loader->Log().find(culprit), std::string::npos) << job.loader->Log();
    }
    EXPECT_NE(job.workers->Log().find("flexmoe worker 0: "), std::string::npos)
        << job.workers->Log();
    EXPECT_NE(job.workers->Log().find(culprit), std::string::npos) << job.workers->Log();
  }

  static testing::TempDir* dir_;
};
testing::TempDir* CoordinatorTest::dir_ = nullptr;

TEST_F(CoordinatorTest, KilledWorkerEndsTheJobNamingIt) {
  ExpectJobEndsNaming("kill-worker", "worker", SIGKILL, "worker 1 (host ");
}

TEST_F(CoordinatorTest, StoppedWorkerIsFoundByItsHeartbeats) {
  ExpectJobEndsNaming("stop-worker", "worker", SIGSTOP, "worker 1 (host ");
}

TEST_F(CoordinatorTest, KilledLoaderEndsTheJobNamingIt) {
  ExpectJobEndsNaming("kill-loader", "loader", SIGKILL, "loader 0 (host ");
}

TEST_F(CoordinatorTest, KilledCoordinatorEndsTheJob) {
  ExpectJobEndsNaming("kill-coordinator", "coordinator", SIGKILL, "lost the coordinator at ");
}

TEST_F(CoordinatorTest, WorkerWithAnotherConfigIsRefusedNamingTheField) {
  Job job(dir_->Path("refused"), Common("refused", 2), {"--set", "training.lr=0.5"});
  std::vector<int> status = job.WaitAll(60);
  for (int s : status) EXPECT_NE(s, 0);
  for (int s : status) EXPECT_NE(s, -1);
  EXPECT_NE(job.workers->Log().find("field training.lr"), std::string::npos) << job.workers->Log();
  EXPECT_NE(job.coordinator->Log().find("worker "), std::string::npos) << job.coordinator->Log();
}

// SIGUSR1 or SIGTERM to any member (or to mpirun, which forwards SIGUSR1 to the ranks):
// the workers checkpoint at the next step boundary and every process exits 0; the job
// then continues from that checkpoint with --resume.
TEST_F(CoordinatorTest, PreemptionSignalsCheckpointAndStopWithZero) {
  struct Case {
    std::string name, target;
    int signal;
  };
  for (const Case& c : std::vector<Case>{{"usr1-coordinator", "coordinator", SIGUSR1},
                                         {"term-loader", "loader", SIGTERM},
                                         {"usr1-mpirun", "mpirun", SIGUSR1}}) {
    Job job(dir_->Path(c.name), Common(c.name, 500));
    ASSERT_GT(job.Pid("worker", 1), 0) << job.coordinator->Log();
    ASSERT_FALSE(job.workers->WaitForLine("epoch 1 done", 60).empty()) << job.workers->Log();
    testing::Process* target = c.target == "coordinator" ? job.coordinator.get()
                               : c.target == "loader"    ? job.loader.get()
                                                         : job.workers.get();
    target->Signal(c.signal);
    EXPECT_EQ(job.WaitAll(60), (std::vector<int>{0, 0, 0}))
        << c.name << "\n"
        << job.coordinator->Log() << job.workers->Log();
    EXPECT_NE(job.workers->Log().find("stopped (preempted)"), std::string::npos)
        << job.workers->Log();
    Json state = Json::parse(ReadFile(dir_->Path(c.name + "/run/job.json")));
    EXPECT_EQ(state["state"], "preempted") << c.name;
    const std::string newest = state["newest_checkpoint"];
    ASSERT_FALSE(newest.empty()) << c.name;
    if (c.target != "coordinator") continue;
    // Continue it, shortened to end with the epoch in progress.
    const TrainManifest manifest = ReadTrainManifest(newest);
    const int epochs = manifest.progress.position.epoch + 1;
    Job resumed(dir_->Path(c.name + "-resumed"), Common(c.name, epochs), {"--resume"});
    EXPECT_EQ(resumed.WaitAll(120), (std::vector<int>{0, 0, 0})) << resumed.workers->Log();
    EXPECT_NE(resumed.workers->Log().find("resuming from " + newest), std::string::npos)
        << resumed.workers->Log();
  }
}

// A preemption before any worker has joined (or after all have left) has nobody to wait
// for: the coordinator ends the job at once, preempted, exit 0 (it used to wait for
// workers forever).
TEST_F(CoordinatorTest, APreemptedCoordinatorWithoutWorkersEndsAtOnce) {
  const std::string dir = dir_->Path("preempted-alone");
  fs::create_directories(dir);
  std::vector<std::string> argv = {kBinary, "coordinator"};
  const std::vector<std::string> common = Common("preempted-alone", 5);
  argv.insert(argv.end(), common.begin(), common.end());
  testing::Process coordinator(argv, dir + "/coordinator.log", kEnv);
  ASSERT_FALSE(coordinator.WaitForLine("listening on ", 30).empty()) << coordinator.Log();
  coordinator.Signal(SIGTERM);
  EXPECT_EQ(coordinator.Wait(10), 0) << coordinator.Log();
  Json state = Json::parse(ReadFile(dir + "/run/job.json"));
  EXPECT_EQ(state["state"], "preempted");
  EXPECT_NE(state["reason"].get<std::string>().find("signal 15"), std::string::npos) << state;
}

// The coordinator's checkpoint schedule is the job's (the workers' own settings say
// otherwise), and SIGUSR2 to it adds a checkpoint at the next step boundary. The signal goes
// once training is under way (a fixed pause raced a fast machine: the job could end first),
// and the run is long enough for the request to land before its end.
TEST_F(CoordinatorTest, TheCoordinatorDecidesTheCheckpoints) {
  constexpr int kEpochs = 60, kEvery = 30;
  std::vector<std::string> common = Common("schedule", kEpochs);
  for (const std::string& s : {"checkpoint.every_epochs=" + std::to_string(kEvery),
                               std::string("checkpoint.keep_last=0")}) {
    common.push_back("--set");
    common.push_back(s);
  }
  Job job(dir_->Path("schedule"), common,
          {"--set", "checkpoint.every_epochs=1", "--set", "checkpoint.keep_last=1"});
  ASSERT_FALSE(job.workers->WaitForLine("epoch 2 done", 120).empty()) << job.workers->Log();
  job.coordinator->Signal(SIGUSR2);
  ASSERT_EQ(job.WaitAll(120), (std::vector<int>{0, 0, 0})) << job.workers->Log();
  EXPECT_NE(job.coordinator->Log().find("checkpoint requested"), std::string::npos);
  std::vector<int64_t> steps;
  for (const std::string& dir : CompleteCheckpoints(dir_->Path("schedule/run/checkpoints"))) {
    steps.push_back(ReadTrainManifest(dir).step());
  }
  // The two scheduled ones and the requested one, after epoch 2; all kept.
  ASSERT_EQ(steps.size(), 3u) << job.workers->Log();
  const int64_t per_epoch = *std::max_element(steps.begin(), steps.end()) / kEpochs;
  int scheduled = 0, requested = 0;
  for (int64_t step : steps) {
    const bool on_schedule = step == kEvery * per_epoch || step == kEpochs * per_epoch;
    scheduled += on_schedule;
    requested += !on_schedule && step > 2 * per_epoch;
  }
  EXPECT_EQ(scheduled, 2) << job.workers->Log();
  EXPECT_EQ(requested, 1) << job.workers->Log();
}

TEST_F(CoordinatorTest, SigtermToASingleProcessTrainCheckpointsAndStops) {
  std::vector<std::string> argv = {kBinary, "train", "--threads", "1"};
  std::vector<std::string> common = Common("single-term", 500);
  argv.insert(argv.end(), common.begin(), common.end());
  testing::Process train(argv, dir_->Path("single-term.log"), kEnv);
  ASSERT_FALSE(train.WaitForLine("epoch 2 done", 60).empty()) << train.Log();
  train.Signal(SIGTERM);
  EXPECT_EQ(train.Wait(60), 0) << train.Log();
  EXPECT_NE(train.Log().find("stopped (preempted) in seed 1; newest checkpoint "),
            std::string::npos)
      << train.Log();
}

// On a dataset whose samples crowd into a few modality combinations, LOAD_AWARE spreads the
// hot experts over the workers: the measured imbalance (rows of the most loaded worker's
// experts over the mean) drops, and the losses stay those of CONTIGUOUS.
TEST_F(CoordinatorTest, LoadAwarePlacementLowersImbalanceWithEqualResults) {
  std::vector<std::string> skew = {"--set", "data.input=" + dir_->Path("skew-raw"), "--set",
                                   "data.prepared_dir=" + dir_->Path("skew-prepared"), "--set",
                                   // Combinations 0-3 hold most samples: experts 0-3 are hot.
                                   "synth.combination_weights=40,40,40,40,1,1,1,1,1,1,1,1,1,1,1",
                                   "--set", "synth.min_per_combination=3", "--set",
                                   "synth.num_samples=600", "--set",
                                   "training.gate_loss_weight=0.1"};
  auto run = [&](const std::string& command, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {kBinary, command};
    std::vector<std::string> common = Common("skew", 4);
    argv.insert(argv.end(), common.begin(), common.end());
    argv.insert(argv.end(), skew.begin(), skew.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::RunCommand(argv, 300, kEnv);
  };
  ASSERT_EQ(run("synth", {}).exit_code, 0);
  ASSERT_EQ(run("prepare", {}).exit_code, 0);
  auto epochs = [&](const std::string& placement) {
    const std::string dir = dir_->Path("skew-" + placement);
    auto r = run("train", {"--workers", "2", "--threads", "1", "--set",
                           "cluster.placement=" + placement, "--set", "run.dir=" + dir});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("expert placement " + placement + " over 2 ranks"), std::string::npos)
        << r.output;
    std::vector<Json> lines;
    std::ifstream in(dir + "/metrics.jsonl");
    std::string line;
    Json last_placement;
    while (std::getline(in, line)) {
      Json j = Json::parse(line);
      if (j["event"] != "epoch") continue;
      lines.push_back(j);
      if (!j["repacked"].is_null()) last_placement = j["repacked"]["placement"];
    }
    // The coordinator learnt of each re-pack (PLACEMENT): job.json shows the last one.
    if (!last_placement.is_null()) {
      const Json job = Json::parse(ReadFile(dir + "/job.json"));
      EXPECT_EQ(job["placement"], last_placement) << job.dump();
    }
    return lines;
  };
  const std::vector<Json> contiguous = epochs("CONTIGUOUS");
  const std::vector<Json> load_aware = epochs("LOAD_AWARE");
  ASSERT_EQ(contiguous.size(), 4u);
  ASSERT_EQ(load_aware.size(), 4u);
  int repacks = 0;
  for (size_t e = 0; e < 4; ++e) {
    const double a = contiguous[e]["train_loss"], b = load_aware[e]["train_loss"];
    EXPECT_NEAR(b, a, 1e-4 * std::fabs(a)) << "epoch " << e;
    repacks += !load_aware[e]["repacked"].is_null();
    std::cout << "epoch " << e << " expert imbalance: CONTIGUOUS "
              << contiguous[e]["expert_imbalance"] << ", LOAD_AWARE "
              << load_aware[e]["expert_imbalance"] << "\n";
  }
  // Re-packed from the measured loads after a warm-up epoch or two, then clearly lower (on
  // the development machine: 1.07 and 1.06 against 1.003 and 1.005).
  EXPECT_GE(repacks, 1);
  for (size_t e = 2; e < 4; ++e) {
    EXPECT_LT(load_aware[e]["expert_imbalance"].get<double>(),
              contiguous[e]["expert_imbalance"].get<double>() - 0.02)
        << "epoch " << e;
  }
}

// Garbage against `address` while a job runs: each way of being wrong once, then 200 quick
// connects; the silent connection is returned, to be held open until the job ends.
int Garbage(const std::string& address) {
  std::mt19937 random(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(random());
  int fd = testing::ConnectTcp(address);
  testing::SendAll(fd, noise);
  testing::WaitForClose(fd, 10);
  ::close(fd);
  fd = testing::ConnectTcp(address);
  testing::SendAll(fd, std::string(20, '\xff'));
  testing::WaitForClose(fd, 10);
  ::close(fd);
  for (int i = 0; i < 200; ++i) ::close(testing::ConnectTcp(address));
  return testing::ConnectTcp(address);  // says nothing
}

TEST_F(CoordinatorTest, MetricsAndTensorBoardComeFromTheCoordinator) {
  std::vector<std::string> common = Common("metrics", 2);
  for (const char* s : {"metrics.log_every_steps=5", "checkpoint.every_epochs=1"}) {
    common.push_back("--set");
    common.push_back(s);
  }
  Job job(dir_->Path("metrics"), common);
  ASSERT_EQ(job.WaitAll(120), (std::vector<int>{0, 0, 0})) << job.workers->Log();
  const std::string run = dir_->Path("metrics/run");
  // Step lines merged from both workers: their step-time splits, their samples and their
  // tokens per (layer, expert, combination): 4 modalities x 4 patches x top-4 per sample.
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  int steps = 0, epochs = 0, tests = 0;
  while (std::getline(in, line)) {
    Json j = Json::parse(line);
    if (j["event"] == "epoch") {
      ++epochs;
      EXPECT_GT(j["global_step"].get<int64_t>(), 0);
    }
    tests += j["event"] == "test";
    if (j["event"] != "step") continue;
    ++steps;
    ASSERT_EQ(j["worker_step_ms"].size(), 2u) << line;
    EXPECT_GT(j["samples_per_s"].get<double>(), 0) << line;
    const Json& tokens = j["tokens"];
    ASSERT_EQ(tokens["experts"], 16);
    ASSERT_EQ(tokens["combinations"], 15);
    ASSERT_EQ(tokens["layers"].size(), tokens["counts"].size());
    for (const Json& layer : tokens["counts"]) {
      ASSERT_EQ(layer.size(), 16u * 15u);
      int64_t sum = 0;
      for (const Json& n : layer) sum += n.get<int64_t>();
      EXPECT_EQ(sum, j["samples"].get<int64_t>() * 4 * 4 * 4) << line;
    }
  }
  EXPECT_GT(steps, 2);
  EXPECT_EQ(epochs, 2);
  EXPECT_EQ(tests, 1);
  // One event file, the coordinator's (its pid ends the name); every record reads back.
  std::vector<std::string> files;
  for (const auto& f : fs::directory_iterator(run + "/tensorboard")) {
    files.push_back(f.path().string());
  }
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].substr(files[0].rfind('.') + 1), std::to_string(job.coordinator->pid()));
  std::set<std::string> tags;
  for (const std::string& record : ReadTfRecords(files[0])) {
    tensorboard::Event event;
    ASSERT_TRUE(event.ParseFromString(record));
    for (const auto& v : event.summary().value()) tags.insert(v.tag());
  }
  for (const char* tag : {"step/loss", "epoch/train_loss", "validation/accuracy",
                          "experts/layer0/expert00", "test/accuracy", "step_ms/exchange"}) {
    EXPECT_EQ(tags.count(tag), 1u) << tag;
  }
  bool per_combination = false;
  for (const std::string& tag : tags) per_combination |= tag.rfind("expert_load/layer0/c", 0) == 0;
  EXPECT_TRUE(per_combination);
  // job.json names the newest checkpoint the workers reported.
  Json state = Json::parse(ReadFile(run + "/job.json"));
  EXPECT_EQ(state["state"], "finished");
  EXPECT_NE(state["newest_checkpoint"].get<std::string>().find(run + "/checkpoints/step-"),
            std::string::npos);
}

TEST_F(CoordinatorTest, GarbageOnThePortsChangesNothing) {
  Job quiet(dir_->Path("quiet"), Common("quiet", 6));
  ASSERT_EQ(quiet.WaitAll(120), (std::vector<int>{0, 0, 0})) << quiet.workers->Log();

  Job noisy(dir_->Path("noisy"), Common("noisy", 6));
  ASSERT_FALSE(noisy.coordinator_address.empty());
  // A member with the wrong token is refused and the job goes on.
  auto wrong = testing::RunCommand(
      {kBinary, "loader", "--config", kSource + "/configs/quickstart.textproto", "--set",
       "data.input=" + dir_->Path("raw"), "--set", "data.prepared_dir=" + dir_->Path("prepared"),
       "--set", "cluster.job_token_source=env:WRONG_TOKEN", "--set",
       "cluster.coordinator=" + noisy.coordinator_address},
      60, {"WRONG_TOKEN=not-the-token"});
  EXPECT_NE(wrong.exit_code, 0) << wrong.output;
  EXPECT_NE(wrong.output.find("wrong job token"), std::string::npos) << wrong.output;
  const int silent_coordinator = Garbage(noisy.coordinator_address);
  const int silent_loader = Garbage(noisy.loader_address);
  ASSERT_EQ(noisy.WaitAll(120), (std::vector<int>{0, 0, 0})) << noisy.coordinator->Log();
  ::close(silent_coordinator);
  ::close(silent_loader);
  EXPECT_NE(noisy.coordinator->Log().find("refusing connection"), std::string::npos);

  auto epochs = [](const std::string& path) {
    std::vector<double> losses;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      Json j = Json::parse(line);
      if (j["event"] == "epoch") losses.push_back(j["train_loss"].get<double>());
    }
    return losses;
  };
  const std::vector<double> a = epochs(dir_->Path("quiet/run/metrics.jsonl"));
  EXPECT_EQ(a.size(), 6u);
  EXPECT_EQ(epochs(dir_->Path("noisy/run/metrics.jsonl")), a);
  Json job = Json::parse(ReadFile(dir_->Path("noisy/run/job.json")));
  EXPECT_EQ(job["state"], "finished");
  EXPECT_FALSE(job["newest_checkpoint"].get<std::string>().empty());
}

}  // namespace
}  // namespace flexmoe
