// Training end to end on configs/quickstart.textproto: the test accuracy it reaches and the
// ZERO-bank ablation does not, routing of combination c's tokens to expert c, and
// bit-identical losses for the same seed.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "data_loader/epoch_plan.h"
#include "data_loader/prepare.h"
#include "data_loader/synth.h"
#include "proto/config_loader.h"
#include "tests/testing/temp_dir.h"
#include "trainer/checkpoint.h"
#include "trainer/model.h"
#include "trainer/trainer.h"

namespace flexmoe {
namespace {

// The quickstart data, generated and prepared once for the whole suite.
class QuickstartTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    config::Config config = Config({});
    GenerateSynthetic(config, config.data().input());
    PrepareDataset(config, config.data().prepared_dir(), nullptr);
    prepared_ = new PreparedDataset(PreparedDataset::Open(config.data().prepared_dir()));
    data_ = new DecodedDataset(*prepared_);
  }
  static void TearDownTestSuite() {
    delete data_;
    delete prepared_;
    delete dir_;
  }
  static config::Config Config(std::vector<std::string> overrides) {
    overrides.insert(overrides.begin(), {"data.input=" + dir_->Path("raw"),
                                         "data.prepared_dir=" + dir_->Path("prepared")});
    return LoadConfig(std::string(FLEXMOE_SOURCE_DIR) + "/configs/quickstart.textproto", overrides);
  }
  static TrainResult Run(const std::vector<std::string>& overrides,
                         const std::string& run_dir = "") {
    TrainOptions options;
    options.threads = 1;
    options.run_dir = run_dir;
    config::Config config = Config(overrides);
    return Train(config, *prepared_, *data_, config.training().seed(), options);
  }
  static testing::TempDir* dir_;
  static PreparedDataset* prepared_;
  static DecodedDataset* data_;
};
testing::TempDir* QuickstartTest::dir_ = nullptr;
PreparedDataset* QuickstartTest::prepared_ = nullptr;
DecodedDataset* QuickstartTest::data_ = nullptr;

// The quickstart reaches 0.55 test accuracy with the learned bank (0.60 measured on the
// development machine); with zeros for missing modalities it stays below (0.50 measured).
TEST_F(QuickstartTest, LearnedBankReachesTheStatedAccuracyAndZeroBankDoesNot) {
  TrainResult learned = Run({}, dir_->Path("run-learned"));
  TrainResult zero = Run({"model.bank_mode=ZERO"});
  double learned_acc = learned.test.metrics.overall.accuracy;
  double zero_acc = zero.test.metrics.overall.accuracy;
  std::cout << "test accuracy: learned bank " << learned_acc << ", zero bank " << zero_acc << "\n";
  EXPECT_GE(learned_acc, 0.55);
  EXPECT_LT(zero_acc, 0.55);
  EXPECT_GT(learned.test.metrics.overall.auc, 0.70);

  // The S-Router pulls the tokens of combination c > 0 towards expert c.
  int64_t own = 0, tokens = 0;
  for (size_t c = 1; c < learned.test.tokens.size(); ++c) {
    own += learned.test.routed_to_own_expert[c];
    tokens += learned.test.tokens[c];
  }
  double share = static_cast<double>(own) / tokens;
  std::cout << "tokens of combination c > 0 with top-1 expert c: " << share << "\n";
  EXPECT_GT(share, 0.45);  // measured 0.51; chance is 1/16
  ASSERT_TRUE(std::filesystem::exists(learned.checkpoint_dir + "/manifest.json"));
  ASSERT_TRUE(std::filesystem::exists(dir_->Path("run-learned/metrics.jsonl")));
}

TEST_F(QuickstartTest, SameSeedGivesBitIdenticalLosses) {
  TrainResult a = Run({"training.epochs=2", "training.warmup_epochs=1"});
  TrainResult b = Run({"training.epochs=2", "training.warmup_epochs=1"});
  ASSERT_EQ(a.step_losses.size(), b.step_losses.size());
  ASSERT_FALSE(a.step_losses.empty());
  for (size_t i = 0; i < a.step_losses.size(); ++i) {
    ASSERT_EQ(a.step_losses[i], b.step_losses[i]) << "step " << i;
  }
  TrainResult c = Run({"training.epochs=2", "training.warmup_epochs=1", "training.seed=2"});
  EXPECT_NE(a.step_losses.back(), c.step_losses.back());
}

TEST_F(QuickstartTest, CheckpointReproducesTheTestMetrics) {
  TrainResult a = Run({"training.epochs=2", "training.warmup_epochs=1"}, dir_->Path("run-ckpt"));
  config::Config config = Config({});
  torch::manual_seed(99);  // a different initialisation, overwritten by the load
  FlexMoeModel model(config.model(), ModelShape{data_->feature_sizes(), 3, {}}, 99);
  CheckpointInfo info = LoadCheckpoint(*model, a.checkpoint_dir);
  EXPECT_EQ(info.epoch, a.best_epoch);
  EXPECT_EQ(info.seed, 1u);
  model->eval();
  EvalResult again = Evaluate(*model, *data_, SamplesOfSplit(prepared_->index, 2), 3,
                              static_cast<int>(a.test.tokens.size()), at::Tensor());
  EXPECT_EQ(again.metrics.overall.accuracy, a.test.metrics.overall.accuracy);
  EXPECT_EQ(again.metrics.overall.auc, a.test.metrics.overall.auc);
  EXPECT_EQ(again.loss, a.test.loss);
}

}  // namespace
}  // namespace flexmoe
