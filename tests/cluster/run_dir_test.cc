// RunDir: the names of a run directory's files, the seed directories in the order of their
// numbers, and the one rule for a complete checkpoint (step-<8+ digits>/ with a manifest;
// temporary, incomplete and misnamed ones skipped; ordered by step, not by name).
#include "cluster/base/run_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

TEST(RunDirTest, NamesEveryFileWhereTheDocsSay) {
  const RunDir run("/runs/x");
  EXPECT_EQ(run.job_json(), "/runs/x/job.json");
  EXPECT_EQ(run.job_token(), "/runs/x/job.token");
  EXPECT_EQ(run.web_token(), "/runs/x/web.token");
  EXPECT_EQ(run.lease(), "/runs/x/job.lease");
  EXPECT_EQ(run.metrics(), "/runs/x/metrics.jsonl");
  EXPECT_EQ(run.tensorboard(), "/runs/x/tensorboard");
  EXPECT_EQ(run.config(), "/runs/x/config.textproto");
  EXPECT_EQ(run.coordinator_log(), "/runs/x/coordinator.log");
  EXPECT_EQ(run.loader_log(), "/runs/x/loader.log");
  EXPECT_EQ(run.ensemble_json(), "/runs/x/ensemble.json");
  EXPECT_EQ(run.checkpoints(), "/runs/x/checkpoints");
  EXPECT_EQ(run.export_dir(), "/runs/x/checkpoint");
  EXPECT_EQ(run.eval_dir(), "/runs/x/eval");
  EXPECT_EQ(run.report_dir(), "/runs/x/report");
  EXPECT_EQ(run.seed(7).checkpoints(), "/runs/x/seed-7/checkpoints");
}

TEST(RunDirTest, SeedsComeInTheOrderOfTheirNumbers) {
  testing::TempDir dir;
  for (const char* name : {"seed-10", "seed-2", "seed-1", "seed-x", "seed-", "seeds"}) {
    std::filesystem::create_directories(dir.Path(name));
  }
  dir.Write("seed-3", "a file, not a seed directory");
  EXPECT_EQ(RunDir(dir.path()).seeds(), (std::vector<uint64_t>{1, 2, 10}));
  EXPECT_TRUE(RunDir(dir.Path("missing")).seeds().empty());
}

TEST(RunDirTest, TheNewestCompleteCheckpointIsTheLargestStepWithAManifest) {
  testing::TempDir dir;
  const RunDir run(dir.path());
  EXPECT_EQ(run.NewestCheckpoint(), "");  // no checkpoints/ at all
  const std::string c = run.checkpoints() + "/";
  dir.Write("checkpoints/step-00000016/manifest.json", "{}");
  dir.Write("checkpoints/step-00000100/manifest.json", "{}");
  dir.Write("checkpoints/step-100000000/manifest.json", "{}");      // more than 8 digits
  dir.Write("checkpoints/step-00000200/model.safetensors", "");     // no manifest yet
  dir.Write("checkpoints/.tmp-step-00000300/manifest.json", "{}");  // staging
  dir.Write("checkpoints/step-0000040/manifest.json", "{}");        // 7 digits: not ours
  dir.Write("checkpoints/step-00000500", "a file");
  EXPECT_EQ(
      run.CompleteCheckpoints(),
      (std::vector<std::string>{c + "step-00000016", c + "step-00000100", c + "step-100000000"}));
  EXPECT_EQ(run.NewestCheckpoint(), c + "step-100000000");
}

}  // namespace
}  // namespace flexmoe
