// Training with batches from a `flexmoe loader` process over loopback TCP gives exactly the
// losses of the in-process plan for the same seed; a worker refuses a loader that serves
// another dataset.
#include <gtest/gtest.h>

#include <cstdlib>

#include "cluster/base/error.h"
#include "data_loader/prepare.h"
#include "data_loader/synth.h"
#include "launch/loader_batches.h"
#include "proto/config_loader.h"
#include "tests/data_loader/loader_test_util.h"
#include "tests/testing/temp_dir.h"
#include "trainer/train/trainer.h"

namespace flexmoe {
namespace {

// The same losses step by step, and the same validation and test scores (from the loader's
// evaluation passes).
void ExpectTheSameRun(const TrainResult& streamed, const TrainResult& expected) {
  ASSERT_EQ(streamed.step_losses.size(), expected.step_losses.size());
  for (size_t i = 0; i < expected.step_losses.size(); ++i) {
    EXPECT_EQ(streamed.step_losses[i], expected.step_losses[i]) << "step " << i;
  }
  ASSERT_EQ(streamed.epochs.size(), expected.epochs.size());
  for (size_t e = 0; e < expected.epochs.size(); ++e) {
    EXPECT_EQ(streamed.epochs[e].validation.loss, expected.epochs[e].validation.loss);
    EXPECT_EQ(streamed.epochs[e].validation.metrics.overall.accuracy,
              expected.epochs[e].validation.metrics.overall.accuracy);
  }
  EXPECT_EQ(streamed.test.log_probs, expected.test.log_probs);
  EXPECT_EQ(streamed.best_validation.labels, expected.best_validation.labels);
  EXPECT_FALSE(streamed.test.labels.empty());
}

TEST(LoaderTrainTest, LoaderProcessGivesTheInProcessLosses) {
  testing::TempDir dir;
  std::string token_file = dir.Write("token", "s3cret\n");
  std::vector<std::string> overrides = {"data.input=" + dir.Path("raw"),
                                        "data.prepared_dir=" + dir.Path("prepared"),
                                        "synth.num_samples=300",
                                        "training.epochs=2",
                                        "training.warmup_epochs=1",
                                        "model.hidden_dim=32",
                                        "model.patches=4",
                                        "cluster.job_token_source=file:" + token_file};
  std::string config_path = std::string(FLEXMOE_SOURCE_DIR) + "/configs/quickstart.textproto";
  config::Config config = LoadConfig(config_path, overrides);
  GenerateSynthetic(config, config.data().input());
  PrepareDataset(config, config.data().prepared_dir(), nullptr);

  std::vector<std::string> argv = {FLEXMOE_BINARY, "loader",   "--config",
                                   config_path,    "--listen", "127.0.0.1:0"};
  for (const auto& o : overrides) {
    argv.push_back("--set");
    argv.push_back(o);
  }
  testing::ChildProcess loader(argv);
  std::string line, address;
  for (int i = 0; i < 50 && address.empty(); ++i) {
    line = loader.ReadLine(10);
    if (line.rfind("listening on ", 0) == 0) address = line.substr(13);
    if (line.empty()) break;
  }
  ASSERT_FALSE(address.empty()) << "the loader did not report its address";

  PreparedDataset prepared = PreparedDataset::Open(config.data().prepared_dir());
  DecodedDataset data(prepared);
  TrainOptions in_process;
  in_process.threads = 1;
  TrainResult expected = Train(config, prepared, &data, config.training().seed(), in_process);

  config::Config remote_config = config;
  remote_config.mutable_cluster()->add_loader_addresses(address);
  TrainOptions remote;
  remote.threads = 1;
  // Fed by the loader, the trainer holds no samples: the metadata only, every batch
  // (training, validation, test) streamed.
  const PreparedDataset meta_only = PreparedDataset::OpenMeta(config.data().prepared_dir());
  remote.batches = LoaderBatchesFromConfig(remote_config, meta_only, config.training().seed());
  ASSERT_TRUE(remote.batches);
  TrainResult streamed = Train(remote_config, meta_only, nullptr, config.training().seed(), remote);

  ExpectTheSameRun(streamed, expected);

  // A worker whose own dataset differs from the one the loader serves refuses the loader.
  config::Config other = remote_config;
  other.mutable_data()->set_input(dir.Path("other-raw"));
  other.mutable_data()->set_prepared_dir(dir.Path("other-prepared"));
  other.mutable_synth()->set_num_samples(280);
  GenerateSynthetic(other, other.data().input());
  PrepareDataset(other, other.data().prepared_dir(), nullptr);
  PreparedDataset other_prepared = PreparedDataset::Open(other.data().prepared_dir());
  auto source = LoaderBatchesFromConfig(other, other_prepared, 1)(0, 0, 1);
  try {
    source->StartEpoch(0, 0);
    ADD_FAILURE() << "a loader of another dataset was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(std::string(e.what()).find("serves another dataset (300 samples"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flexmoe
