// Checkpoints and resume end to end through the flexmoe command, with real mpirun jobs: a
// 2-worker job killed (SIGKILL) after its second checkpoint and resumed gives the same
// losses bit for bit; its checkpoint resumes on 1, 3 and 4 workers (uneven expert
// ownership) within the stated tolerances; a crash at every point of a checkpoint write
// leaves the previous checkpoint valid and resumable; a flipped byte, a truncated file and
// a missing file are refused by name; a changed config is refused naming the field;
// Python reads the experts of a 2-worker checkpoint; several seeds run at 2 workers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cluster/base/atomic_file.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "trainer/checkpoint/resumable_manifest.h"
#include "trainer/checkpoint/safetensors.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using testing::CommandResult;
using testing::RunCommand;

const std::string kBinary = FLEXMOE_BINARY;
const std::string kSource = FLEXMOE_SOURCE_DIR;

struct Metrics {
  std::vector<Json> epochs, steps, resumes, tests;
};

Metrics ReadMetrics(const std::string& path) {
  Metrics m;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    Json j = Json::parse(line);
    const std::string event = j["event"];
    if (event == "epoch") m.epochs.push_back(j);
    if (event == "step") m.steps.push_back(j);
    if (event == "resume") m.resumes.push_back(j);
    if (event == "test") m.tests.push_back(j);
  }
  return m;
}

double RelativeError(double a, double b) {
  return std::fabs(a - b) / std::max(std::fabs(b), 1e-12);
}

// One small dataset, and uninterrupted runs at 1 and 2 workers (a checkpoint every epoch,
// all kept), shared by the suite.
class ResumeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    ASSERT_EQ(Flexmoe({"synth"}).exit_code, 0);
    ASSERT_EQ(Flexmoe({"prepare"}).exit_code, 0);
    CommandResult one = Train(1, Run("uninterrupted-1"));
    ASSERT_EQ(one.exit_code, 0) << one.output;
    CommandResult two = Train(2, Run("uninterrupted-2"));
    ASSERT_EQ(two.exit_code, 0) << two.output;
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Run(const std::string& name) { return dir_->Path("runs/" + name); }
  static std::vector<std::string> Common() {
    std::vector<std::string> sets = {"data.input=" + dir_->Path("raw"),
                                     "data.prepared_dir=" + dir_->Path("prepared"),
                                     "synth.num_samples=360",
                                     "training.epochs=4",
                                     "training.warmup_epochs=1",
                                     "training.batch_size=16",
                                     "model.hidden_dim=32",
                                     "model.patches=4",
                                     "checkpoint.keep_last=10",
                                     "metrics.log_every_steps=1"};
    std::vector<std::string> args = {"--config", kSource + "/configs/quickstart.textproto"};
    for (const std::string& s : sets) {
      args.push_back("--set");
      args.push_back(s);
    }
    return args;
  }
  static CommandResult Flexmoe(std::vector<std::string> args,
                               const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), kBinary);
    std::vector<std::string> common = Common();
    args.insert(args.begin() + 2, common.begin(), common.end());
    return RunCommand(args, 300, env);
  }
  static CommandResult Train(int workers, const std::string& run_dir,
                             std::vector<std::string> extra = {},
                             const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = {"train", "--workers", std::to_string(workers), "--threads",
                                     "1",     "--set",     "run.dir=" + run_dir};
    args.insert(args.end(), extra.begin(), extra.end());
    return Flexmoe(args, env);
  }
  static CommandResult Inspect(const std::string& dir) {
    return RunCommand({kBinary, "inspect-checkpoint", dir});
  }
  // A copy of `checkpoint` as the only checkpoint of a new run directory.
  static std::string CopyIntoNewRun(const std::string& checkpoint, const std::string& name) {
    std::string run = Run(name);
    fs::create_directories(run + "/checkpoints");
    fs::copy(checkpoint, run + "/checkpoints/" + fs::path(checkpoint).filename().string(),
             fs::copy_options::recursive);
    return run;
  }
  static std::vector<std::string> Checkpoints(const std::string& run) {
    return CompleteCheckpoints(run + "/checkpoints");
  }

  static testing::TempDir* dir_;
};
testing::TempDir* ResumeTest::dir_ = nullptr;

TEST_F(ResumeTest, KilledWorkerJobResumesWithTheSameLossesBitForBit) {
  const std::string run = Run("killed");
  // Worker 1 dies by SIGKILL as soon as the second checkpoint is complete.
  CommandResult killed = Train(2, run, {}, {"FLEXMOE_TEST_CHECKPOINT_FAULT=2:0:1"});
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  ASSERT_EQ(Checkpoints(run).size(), 2u);
  CommandResult resumed = Train(2, run, {"--resume"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from " + run + "/checkpoints/step-"), std::string::npos)
      << resumed.output;

  Metrics a = ReadMetrics(Run("uninterrupted-2") + "/metrics.jsonl");
  Metrics b = ReadMetrics(run + "/metrics.jsonl");
  ASSERT_EQ(a.epochs.size(), 4u);
  ASSERT_EQ(b.epochs.size(), 4u);  // continued, not restarted
  ASSERT_EQ(b.resumes.size(), 1u);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_EQ(b.epochs[e]["train_loss"].get<double>(), a.epochs[e]["train_loss"].get<double>())
        << "epoch " << e;
    EXPECT_EQ(b.epochs[e]["validation"], a.epochs[e]["validation"]) << "epoch " << e;
  }
  ASSERT_EQ(a.steps.size(), b.steps.size());
  for (size_t s = 0; s < a.steps.size(); ++s) {
    EXPECT_EQ(b.steps[s]["loss"].get<double>(), a.steps[s]["loss"].get<double>()) << "step " << s;
  }
  ASSERT_EQ(b.tests.size(), 1u);
  EXPECT_EQ(b.tests[0]["test"], a.tests[0]["test"]);
}

TEST_F(ResumeTest, TwoWorkerCheckpointResumesOnOneThreeAndFourWorkers) {
  // The checkpoint after epoch 2 of the 2-worker run, re-sharded onto 1, 3 and 4 workers
  // (16 experts: 6/5/5 and 4 each).
  const std::string checkpoint = Checkpoints(Run("uninterrupted-2"))[1];
  const TrainManifest manifest = ReadTrainManifest(checkpoint);
  ASSERT_EQ(manifest.world_size, 2);
  ASSERT_EQ(manifest.progress.position.epoch, 2);
  Metrics a = ReadMetrics(Run("uninterrupted-2") + "/metrics.jsonl");
  for (int workers : {1, 3, 4}) {
    const std::string run = CopyIntoNewRun(checkpoint, "reshard-" + std::to_string(workers));
    CommandResult r = Train(workers, run, {"--resume"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    Metrics b = ReadMetrics(run + "/metrics.jsonl");
    ASSERT_EQ(b.resumes.size(), 1u);
    EXPECT_EQ(b.resumes[0]["saved_workers"], 2);
    EXPECT_EQ(b.resumes[0]["workers"], workers);
    // The next step's loss within 1e-5 relative, the next epoch's within 1e-4.
    ASSERT_FALSE(b.steps.empty());
    const int64_t next = b.steps[0]["global_step"];
    EXPECT_EQ(next, manifest.step());
    EXPECT_LT(RelativeError(b.steps[0]["loss"], a.steps[next]["loss"]), 1e-5) << workers;
    ASSERT_EQ(b.epochs.size(), 2u);
    EXPECT_EQ(b.epochs[0]["epoch"], 2);
    EXPECT_LT(RelativeError(b.epochs[0]["train_loss"], a.epochs[2]["train_loss"]), 1e-4)
        << workers << " workers";
  }
}

TEST_F(ResumeTest, CrashAtAnyPointOfACheckpointWriteLeavesThePreviousOne) {
  Metrics reference = ReadMetrics(Run("uninterrupted-1") + "/metrics.jsonl");
  // Rank 0 of a 1-worker job at each of its six operations of the second checkpoint; then
  // worker 1 of a 2-worker job after writing its experts, before rank 0 commits.
  struct Case {
    int workers, point, rank;
  };
  std::vector<Case> cases;
  for (int k = 1; k <= 6; ++k) cases.push_back({1, k, 0});
  cases.push_back({2, 1, 1});
  for (const Case& c : cases) {
    const std::string name = "crash-" + std::to_string(c.workers) + "-" + std::to_string(c.point) +
                             "-" + std::to_string(c.rank);
    const std::string run = Run(name);
    const std::string fault =
        "FLEXMOE_TEST_CHECKPOINT_FAULT=2:" + std::to_string(c.point) + ":" + std::to_string(c.rank);
    CommandResult killed = Train(c.workers, run, {}, {fault});
    ASSERT_NE(killed.exit_code, 0) << name << "\n" << killed.output;
    std::vector<std::string> complete = Checkpoints(run);
    // Until the rename (operation 5) only the first checkpoint is complete; after it both.
    ASSERT_EQ(complete.size(), c.rank == 0 && c.point >= 5 ? 2u : 1u) << name;
    for (const std::string& dir : complete) {
      CommandResult inspect = Inspect(dir);
      EXPECT_EQ(inspect.exit_code, 0) << name << ": " << dir << "\n" << inspect.output;
    }
    if (c.workers != 1) continue;
    CommandResult resumed = Train(1, run, {"--resume"});
    ASSERT_EQ(resumed.exit_code, 0) << name << "\n" << resumed.output;
    Metrics m = ReadMetrics(run + "/metrics.jsonl");
    ASSERT_EQ(m.epochs.size(), 4u) << name;
    for (size_t e = 0; e < 4; ++e) {
      EXPECT_EQ(m.epochs[e]["train_loss"].get<double>(),
                reference.epochs[e]["train_loss"].get<double>())
          << name << " epoch " << e;
    }
  }
}

TEST_F(ResumeTest, CorruptTruncatedAndMissingFilesAreRefusedByName) {
  const std::string checkpoint = Checkpoints(Run("uninterrupted-2")).back();
  struct Damage {
    std::string name, file;
    std::function<void(const std::string&)> apply;
  };
  std::vector<Damage> damages = {
      {"flipped", "experts-rank-00001.safetensors",
       [](const std::string& path) {
         std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
         f.seekg(static_cast<std::streamoff>(fs::file_size(path) / 2));
         char c = 0;
         f.read(&c, 1);
         f.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
         c = static_cast<char>(c ^ 0x10);
         f.write(&c, 1);
       }},
      {"truncated", "replicated.safetensors",
       [](const std::string& path) { fs::resize_file(path, fs::file_size(path) - 100); }},
      {"missing", "config.textproto", [](const std::string& path) { fs::remove(path); }},
      {"manifest", "manifest.json",
       [](const std::string& path) {
         std::string text = ReadFile(path);
         const size_t at = text.find("\"adam_steps\": ") + 14;
         text[at] = text[at] == '9' ? '8' : static_cast<char>(text[at] + 1);
         std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
       }},
  };
  for (const Damage& d : damages) {
    const std::string run = CopyIntoNewRun(checkpoint, "damaged-" + d.name);
    const std::string dir = Checkpoints(run).back();
    d.apply(dir + "/" + d.file);
    CommandResult inspect = Inspect(dir);
    EXPECT_EQ(inspect.exit_code, 2) << d.name << "\n" << inspect.output;
    EXPECT_NE(inspect.output.find(dir + "/" + d.file), std::string::npos) << d.name << "\n"
                                                                          << inspect.output;
    for (int workers : {1, 2}) {
      CommandResult resumed = Train(workers, run, {"--resume"});
      EXPECT_EQ(resumed.exit_code, 2) << d.name << " at " << workers << "\n" << resumed.output;
      EXPECT_NE(resumed.output.find(dir + "/" + d.file), std::string::npos)
          << d.name << " at " << workers << "\n"
          << resumed.output;
    }
  }
  // An intact copy still inspects cleanly.
  EXPECT_EQ(Inspect(checkpoint).exit_code, 0);
}

TEST_F(ResumeTest, ChangedComputationIsRefusedNamingTheFieldAndMoreEpochsAreNot) {
  const std::string checkpoint = Checkpoints(Run("uninterrupted-1"))[1];
  const std::string run = CopyIntoNewRun(checkpoint, "changed");
  CommandResult refused = Train(1, run, {"--resume", "--set", "training.lr=0.002"});
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("field training.lr"), std::string::npos) << refused.output;
  refused = Train(1, run, {"--resume", "--set", "model.dropout=0.2"});
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find("field model.dropout"), std::string::npos) << refused.output;
  CommandResult longer = Train(1, run, {"--resume", "--set", "training.epochs=5"});
  ASSERT_EQ(longer.exit_code, 0) << longer.output;
  EXPECT_EQ(ReadMetrics(run + "/metrics.jsonl").epochs.size(), 3u);  // epochs 2, 3 and 4
  // --resume without a run directory, or one without checkpoints, says so.
  CommandResult unnamed = RunCommand(
      {kBinary, "train", "--config", kSource + "/configs/quickstart.textproto", "--resume"});
  EXPECT_EQ(unnamed.exit_code, 2) << unnamed.output;
  EXPECT_NE(unnamed.output.find("run.dir"), std::string::npos) << unnamed.output;
  CommandResult empty = Train(1, Run("never-started"), {"--resume"});
  EXPECT_EQ(empty.exit_code, 2) << empty.output;
  EXPECT_NE(empty.output.find("no complete checkpoint"), std::string::npos) << empty.output;
}

TEST_F(ResumeTest, PythonReadsTheExpertsOfATwoWorkerCheckpoint) {
  // The last checkpoint's best-epoch experts, assembled in Python from both owners' files by
  // global expert id, are the experts of the best-parameters export, which rank 0 gathered
  // over MPI: a wrong id on either side would show.
  const std::string run = Run("uninterrupted-2");
  const std::string checkpoint = Checkpoints(run).back();
  const std::string out = dir_->Path("python-experts");
  CommandResult r = RunCommand({"/usr/bin/python3", kSource + "/launch/read_checkpoint.py",
                                checkpoint, "--role", "best", "--dump-experts", out});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  SafetensorsFile exported = SafetensorsFile::Load(run + "/checkpoint/model.safetensors");
  Json shapes = Json::parse(ReadFile(out + "/shapes.json"));
  ASSERT_EQ(shapes.size(), 4u);  // w1, b1, w2, b2 of sparse layer 0
  for (const char* leaf : {"w1", "b1", "w2", "b2"}) {
    const std::string name = std::string("layer0.") + leaf;
    const SafetensorsTensor& mine = exported.Get("layer0.moe.experts." + std::string(leaf));
    ASSERT_EQ(shapes[name].get<std::vector<int64_t>>(), mine.shape) << name;
    const std::string python = ReadFile(out + "/" + name + ".f32");
    ASSERT_EQ(python.size(), mine.byte_size) << name;
    EXPECT_EQ(std::memcmp(python.data(), mine.data, mine.byte_size), 0) << name;
  }
  // The manifest places 8 experts on each of the 2 owners, and each wrote its own.
  const TrainManifest manifest = ReadTrainManifest(checkpoint);
  EXPECT_EQ(manifest.placement.Layer(0).LocalExperts(1).size(), 8u);
  int owners = 0;
  for (const FileEntry& f : manifest.files) owners += f.name.rfind("experts-rank-", 0) == 0;
  EXPECT_EQ(owners, 2);
}

// training.cross_fit at two workers fed by a loader: seed i's model validates on fold i of
// the training and validation samples, the folds are disjoint and cover them, and the
// ensemble's validation score is out of fold, over all of them.
TEST_F(ResumeTest, CrossFittedSeedsValidateOnDisjointFoldsScoredOutOfFold) {
  const std::string run = Run("cross-fit");
  CommandResult r = Train(2, run,
                          {"--set", "training.seeds=1,2,3", "--set", "training.cross_fit=true",
                           "--set", "training.epochs=1", "--set", "training.warmup_epochs=0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("seed 3: cross-fitted, validating on fold 3 of 3"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("(out of fold)"), std::string::npos) << r.output;
  const Json summary = Json::parse(ReadFile(dir_->Path("prepared") + "/summary.json"));
  const int64_t training = summary["splits"]["training"]["samples"].get<int64_t>();
  const int64_t validation = summary["splits"]["validation"]["samples"].get<int64_t>();
  const int64_t testing = summary["splits"]["testing"]["samples"].get<int64_t>();
  int64_t validated = 0;
  for (const char* seed : {"seed-1", "seed-2", "seed-3"}) {
    const Metrics m = ReadMetrics(run + "/" + seed + "/metrics.jsonl");
    ASSERT_EQ(m.tests.size(), 1u) << seed;
    const int64_t n = m.tests[0]["validation"]["n"].get<int64_t>();
    EXPECT_NEAR(n, (training + validation) / 3.0, 1.0) << seed;  // stratified: within one
    EXPECT_EQ(m.tests[0]["test"]["n"].get<int64_t>(), testing) << seed;
    validated += n;
  }
  EXPECT_EQ(validated, training + validation);
  const Json ensemble = Json::parse(ReadFile(run + "/ensemble.json"));
  EXPECT_TRUE(ensemble["cross_fit"].get<bool>());
  EXPECT_EQ(ensemble["validation"]["n"].get<int64_t>(), training + validation);
  EXPECT_EQ(ensemble["test"]["n"].get<int64_t>(), testing);
  // One seed cannot be cross-fitted: refused before anything runs, naming the field.
  r = Train(1, Run("cross-fit-1"),
            {"--set", "training.seeds=1", "--set", "training.cross_fit=true"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("training.cross_fit"), std::string::npos) << r.output;
}

TEST_F(ResumeTest, SeveralSeedsAtTwoWorkersAndAWorkerUnderMpirun) {
  const std::string run = Run("seeds");
  CommandResult r = Train(2, run, {"--set", "training.seeds=1,2", "--set", "training.epochs=1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("test over 2 seeds"), std::string::npos) << r.output;
  // The seeds as one predictor: their mean probabilities scored on validation and test.
  EXPECT_NE(r.output.find("the 2-seed ensemble (mean probabilities"), std::string::npos)
      << r.output;
  const nlohmann::json ensemble = nlohmann::json::parse(ReadFile(run + "/ensemble.json"));
  EXPECT_EQ(ensemble["seeds"], nlohmann::json::array({1, 2}));
  EXPECT_EQ(ensemble["test"]["n"],
            ReadMetrics(run + "/seed-1/metrics.jsonl").tests[0]["test"]["n"]);
  EXPECT_TRUE(ensemble["test"]["acc"].is_number());
  for (const char* seed : {"seed-1", "seed-2"}) {
    EXPECT_TRUE(fs::exists(run + "/" + seed + "/checkpoint/manifest.json")) << seed;
    EXPECT_EQ(Checkpoints(run + "/" + seed).size(), 1u) << seed;
  }
  // As if the job had died in seed 2 before its first checkpoint: --resume finishes seed 1
  // from its checkpoint and runs seed 2 again from the start, its log too.
  fs::remove_all(run + "/seed-2/checkpoints");
  std::ofstream(run + "/seed-2/metrics.jsonl", std::ios::app)
      << "{\"event\":\"epoch\",\"epoch\":0,\"train_loss\":1}\n";
  r = Train(2, run, {"--resume", "--set", "training.seeds=1,2", "--set", "training.epochs=1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("seed 2: no checkpoint"), std::string::npos) << r.output;
  EXPECT_EQ(ReadMetrics(run + "/seed-1/metrics.jsonl").tests.size(), 1u);
  Metrics seed2 = ReadMetrics(run + "/seed-2/metrics.jsonl");
  EXPECT_EQ(seed2.epochs.size(), 1u);
  EXPECT_EQ(seed2.tests.size(), 1u);
  // `flexmoe worker` started by hand under mpirun, as a cluster script does.
  std::vector<std::string> argv = {"mpirun", "-np", "2", "--oversubscribe"};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
  argv.push_back(kBinary);
  argv.push_back("worker");
  std::vector<std::string> common = Common();
  argv.insert(argv.end(), common.begin(), common.end());
  for (const std::string& s : {std::string("training.epochs=1"), "run.dir=" + Run("worker")}) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  r = RunCommand(argv, 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Checkpoints(Run("worker")).size(), 1u);
}

}  // namespace
}  // namespace flexmoe
