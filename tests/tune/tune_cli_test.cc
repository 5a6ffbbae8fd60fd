// `flexmoe tune` through the command line on a small quickstart dataset: a two-point grid
// over two folds writes trials.csv and a best.textproto that loads; the folds' prepared data
// hold no test sample; a second run reuses every finished fold; a bad field is refused
// before anything runs; SIGTERM stops the search and its trials, leaving no process behind.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cluster/base/atomic_file.h"
#include "data_loader/shard.h"
#include "tests/testing/process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;
using testing::RunCommand;

const std::string kBinary = FLEXMOE_BINARY;
const std::string kConfig = std::string(FLEXMOE_SOURCE_DIR) + "/configs/quickstart.textproto";
const std::vector<std::string> kEnv = {"OMPI_ALLOW_RUN_AS_ROOT=1",
                                       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMP_NUM_THREADS=1"};

class TuneCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    for (const char* command : {"synth", "prepare"}) {
      std::vector<std::string> argv = {kBinary, command, "--config", kConfig};
      const std::vector<std::string> set = Set();
      argv.insert(argv.end(), set.begin(), set.end());
      auto r = RunCommand(argv, 300, kEnv);
      ASSERT_EQ(r.exit_code, 0) << command << ": " << r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::vector<std::string> Set(int epochs = 2) {
    return {"--set", "data.input=" + dir_->Path("raw"),
            "--set", "data.prepared_dir=" + dir_->Path("prepared"),
            "--set", "training.epochs=" + std::to_string(epochs),
            "--set", "training.warmup_epochs=1",
            "--set", "synth.num_samples=400"};
  }

  static std::vector<std::string> Tune(const std::string& space_text, const std::string& out,
                                       int epochs = 2, const std::string& config = kConfig) {
    const std::string space = out + ".space";
    WriteFileAtomically(space, space_text);
    std::vector<std::string> argv = {kBinary, "tune",     "--config", config,  "--space",
                                     space,   "--trials", "2",        "--out", out};
    const std::vector<std::string> set = Set(epochs);
    argv.insert(argv.end(), set.begin(), set.end());
    return argv;
  }

  static testing::TempDir* dir_;
};
testing::TempDir* TuneCliTest::dir_ = nullptr;

const char kGrid[] =
    "search: GRID\nfolds: 2\nparams { field: \"model.dropout\" values: [\"0.1\", \"0.5\"] }\n";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

void StartTrials(testing::Process& tune, const std::string& out);

TEST_F(TuneCliTest, GridOverFoldsWritesTrialsAndABestConfigThatLoads) {
  const std::string out = dir_->Path("grid");
  auto r = RunCommand(Tune(kGrid, out), 600, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> csv = Lines(ReadFile(out + "/trials.csv"));
  ASSERT_EQ(csv.size(), 3u) << ReadFile(out + "/trials.csv");
  EXPECT_EQ(csv[0], "trial,model.dropout,fold_1,fold_2,mean_acc,std_acc,status");
  EXPECT_EQ(csv[1].rfind("1,0.1,", 0), 0u) << csv[1];
  EXPECT_EQ(csv[2].rfind("2,0.5,", 0), 0u) << csv[2];
  for (int i : {1, 2}) EXPECT_NE(csv[i].find(",done"), std::string::npos) << csv[i];
  EXPECT_NE(r.output.find("best: trial "), std::string::npos) << r.output;

  // The best config is a complete config with the best trial's value.
  const std::string best = ReadFile(out + "/best.textproto");
  EXPECT_EQ(best.rfind("# flexmoe tune: the best of 2 trials", 0), 0u) << best;
  const bool second = r.output.find("best: trial 2 ") != std::string::npos;
  EXPECT_NE(best.find(second ? "dropout: 0.5" : "dropout: 0.1"), std::string::npos) << best;
  auto v = RunCommand({kBinary, "validate-config", out + "/best.textproto"}, 60, kEnv);
  EXPECT_EQ(v.exit_code, 0) << v.output;

  // No fold holds a test sample; the folds' validation parts cover training + validation.
  const PreparedDataset base = PreparedDataset::Open(dir_->Path("prepared"));
  std::set<std::string> test, rest;
  for (int i = 0; i < base.index.id_size(); ++i) {
    (base.index.split(i) == 2 ? test : rest).insert(base.index.id(i));
  }
  ASSERT_FALSE(test.empty());
  std::set<std::string> validated;
  for (const char* fold : {"fold-1", "fold-2"}) {
    const PreparedDataset f = PreparedDataset::Open(out + "/folds/" + fold + "/prepared");
    EXPECT_EQ(f.size(), rest.size()) << fold;
    for (int i = 0; i < f.index.id_size(); ++i) {
      EXPECT_EQ(test.count(f.index.id(i)), 0u) << fold << " holds test sample " << f.index.id(i);
      EXPECT_NE(f.index.split(i), 2u);
      if (f.index.split(i) == 1) validated.insert(f.index.id(i));
    }
  }
  EXPECT_EQ(validated, rest);

  // Run again: every fold is found finished and reused, the same results.
  auto again = RunCommand(Tune(kGrid, out), 120, kEnv);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("(reused)"), std::string::npos) << again.output;
  EXPECT_EQ(Lines(ReadFile(out + "/trials.csv"))[1].substr(0, csv[1].rfind(',')),
            csv[1].substr(0, csv[1].rfind(',')));

  // The trials read tune's copy of the config: a config whose text differs is a new
  // search, whatever its path (here the same settings and one more comment line).
  const std::string edited = dir_->Path("edited.textproto");
  WriteFileAtomically(edited, ReadFile(kConfig) + "# edited\n");
  auto changed = RunCommand(Tune(kGrid, out, 2, edited), 600, kEnv);
  ASSERT_EQ(changed.exit_code, 0) << changed.output;
  EXPECT_EQ(changed.output.find("(reused)"), std::string::npos) << changed.output;
  EXPECT_NE(ReadFile(out + "/best.textproto").find("# Base: " + edited), std::string::npos);
}

TEST_F(TuneCliTest, ABadFieldIsRefusedBeforeAnythingRuns) {
  const std::string out = dir_->Path("bad");
  auto r = RunCommand(
      Tune("folds: 2\nparams { field: \"model.hidden_dimm\" values: [\"8\"] }\n", out), 60, kEnv);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.space: trial 1 gives an invalid config"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("hidden_dimm"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  std::vector<std::string> argv = Tune(kGrid, out);
  argv.insert(argv.end(), {"--trial-timeout-s", "soon"});
  auto timeout = RunCommand(argv, 60, kEnv);
  EXPECT_EQ(timeout.exit_code, 2) << timeout.output;
  EXPECT_NE(timeout.output.find("--trial-timeout-s 'soon' is not a number"), std::string::npos)
      << timeout.output;
  auto syntax =
      RunCommand(Tune("folds: 2\nparams { field: \"model.dropout\" vals: 1 }\n", out), 60, kEnv);
  EXPECT_EQ(syntax.exit_code, 2) << syntax.output;
  EXPECT_NE(syntax.output.find("bad.space:2:"), std::string::npos) << syntax.output;
}

TEST_F(TuneCliTest, SigtermStopsTheSearchAndItsTrials) {
  const std::string out = dir_->Path("stopped");
  testing::Process tune(Tune(kGrid, out, /*epochs=*/500), out + ".log", kEnv);
  StartTrials(tune, out);
  tune.Signal(SIGTERM);
  EXPECT_EQ(tune.Wait(120), 130) << tune.Log();
  EXPECT_NE(tune.Log().find("tune: stopping"), std::string::npos) << tune.Log();
  EXPECT_NE(tune.Log().find("no trial finished"), std::string::npos) << tune.Log();
  // Nothing of the search is left running.
  auto left = RunCommand({"pgrep", "-f", out}, 30);
  EXPECT_EQ(left.exit_code, 1) << left.output;
}

// Start a search and wait until trial 1's two folds are training.
void StartTrials(testing::Process& tune, const std::string& out) {
  ASSERT_NE(tune.WaitForLine("tune: 2 trials", 120), "") << tune.Log();
  for (const char* fold : {"fold-1", "fold-2"}) {
    const std::string metrics = out + "/trials/001/" + fold + "/metrics.jsonl";
    for (int i = 0; i < 600 && !(fs::exists(metrics) && fs::file_size(metrics) > 0); ++i) {
      usleep(100000);
    }
    ASSERT_TRUE(fs::exists(metrics)) << tune.Log();
  }
}

TEST_F(TuneCliTest, KillingTheSearchsGroupEndsEveryTrialsJob) {
  const std::string out = dir_->Path("killed");
  testing::Process tune(Tune(kGrid, out, /*epochs=*/500), out + ".log", kEnv);
  StartTrials(tune, out);
  ::killpg(tune.pid(), SIGKILL);
  tune.Wait(30);
  // The trials' launchers die with the group; each job's coordinator sees its launcher gone
  // and stops the job (workers, loader, mpirun).
  int left = 0;
  for (int i = 0; i < 60; ++i) {
    left = RunCommand({"pgrep", "-f", out}, 30).exit_code == 0;
    if (!left) break;
    sleep(1);
  }
  EXPECT_FALSE(left) << RunCommand({"pgrep", "-af", out}, 30).output;
}

}  // namespace
}  // namespace flexmoe
