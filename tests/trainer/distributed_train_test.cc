// Distributed training under mpirun: W workers give the losses of one process with the same
// global batch, the replicated parameters end bit-identical on every worker, evaluation
// equals the one-process evaluation, and the checkpoint holds every expert; in BF16 the
// tokens travel in half the bytes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <utility>

#include "cluster/comm/mpi_communicator.h"
#include "data_loader/prepare.h"
#include "data_loader/synth.h"
#include "experts/cpu_blas.h"
#include "proto/config_loader.h"
#include "tests/cluster/comm_test_util.h"
#include "tests/testing/temp_dir.h"
#include "trainer/checkpoint/safetensors.h"
#include "trainer/train/trainer.h"

namespace flexmoe {
namespace {

// One quickstart-shaped dataset per rank (deterministic, so identical everywhere), small
// enough for several trainings per test on 2 cores.
struct Setup {
  testing::TempDir dir;
  config::Config config;
  std::unique_ptr<PreparedDataset> prepared;
  std::unique_ptr<DecodedDataset> data;

  explicit Setup(const std::vector<std::string>& extra) {
    std::vector<std::string> overrides = {
        "data.input=" + dir.Path("raw"), "data.prepared_dir=" + dir.Path("prepared"),
        "synth.num_samples=360",         "training.epochs=3",
        "training.warmup_epochs=1",      "training.batch_size=16",
        "model.hidden_dim=32",           "model.patches=4"};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    config =
        LoadConfig(std::string(FLEXMOE_SOURCE_DIR) + "/configs/quickstart.textproto", overrides);
    GenerateSynthetic(config, config.data().input());
    PrepareDataset(config, config.data().prepared_dir(), nullptr);
    prepared = std::make_unique<PreparedDataset>(PreparedDataset::Open(dir.Path("prepared")));
    data = std::make_unique<DecodedDataset>(*prepared);
  }
  TrainResult Run(Communicator* world, int ep_degree, const std::string& run_dir = "") {
    TrainOptions options;
    options.threads = 1;
    options.world = world;
    options.expert_parallel_degree = ep_degree;
    options.run_dir = run_dir;
    return Train(config, *prepared, data.get(), config.training().seed(), options);
  }
};

// A directory made by rank 0 and known to all ranks.
std::string SharedDir(Communicator& world, const testing::TempDir& mine) {
  std::vector<uint8_t> name(256, 0);
  if (world.rank() == 0) std::copy(mine.path().begin(), mine.path().end(), name.begin());
  at::Tensor bytes = at::tensor(std::vector<int64_t>(name.begin(), name.end()), at::kLong);
  world.Broadcast(bytes, 0);
  std::string path;
  for (int64_t i = 0; i < bytes.numel() && bytes[i].item<int64_t>() != 0; ++i) {
    path.push_back(static_cast<char>(bytes[i].item<int64_t>()));
  }
  return path;
}

// The sharded run's and the one-process run's results go to *results when it is not null.
void ExpectEquivalent(const std::vector<std::string>& extra, int ep_degree,
                      std::pair<TrainResult, TrainResult>* results = nullptr) {
  auto world = MakeMpiWorld(testing::kTestTimeout);
  Setup setup(extra);
  testing::TempDir run;
  std::string shared = SharedDir(*world, run);
  TrainResult sharded = setup.Run(world.get(), ep_degree, shared + "/sharded");
  TrainResult single = setup.Run(nullptr, 0, run.Path("single"));

  ASSERT_EQ(sharded.step_losses.size(), single.step_losses.size());
  for (size_t i = 0; i < single.step_losses.size(); ++i) {
    EXPECT_NEAR(sharded.step_losses[i], single.step_losses[i],
                1e-4 * std::fabs(single.step_losses[i]))
        << "step " << i;
  }
  EXPECT_EQ(sharded.best_epoch, single.best_epoch);
  EXPECT_NEAR(sharded.test.metrics.overall.auc, single.test.metrics.overall.auc, 1e-4);
  EXPECT_NEAR(sharded.test.loss, single.test.loss, 1e-4 * single.test.loss);

  // Replicated parameters: the same bytes on every worker.
  at::Tensor crc = at::tensor({static_cast<int64_t>(sharded.replicated_crc)}, at::kLong);
  at::Tensor all = world->AllGather(crc);
  for (int r = 0; r < world->size(); ++r) {
    EXPECT_EQ(all[r][0].item<int64_t>(), crc[0].item<int64_t>()) << "rank " << r;
  }

  // The checkpoint written by W workers holds every expert: it matches the one-process
  // checkpoint tensor by tensor (PEERS.md: checkpoints saving one rank's experts).
  world->Barrier();
  SafetensorsFile mine = SafetensorsFile::Load(shared + "/sharded/checkpoint/model.safetensors");
  SafetensorsFile theirs = SafetensorsFile::Load(run.Path("single/checkpoint/model.safetensors"));
  ASSERT_EQ(mine.names(), theirs.names());
  int expert_tensors = 0;
  for (const std::string& name : theirs.names()) {
    auto a = mine.Get(name), b = theirs.Get(name);
    ASSERT_EQ(a.shape, b.shape) << name;
    std::vector<float> x(a.num_elements()), y(b.num_elements());
    mine.CopyTo(name, SafetensorsDtype::kF32, a.shape, x.data(), x.size() * 4);
    theirs.CopyTo(name, SafetensorsDtype::kF32, b.shape, y.data(), y.size() * 4);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      worst = std::max(worst, std::fabs(double(x[i]) - y[i]) / (std::fabs(double(y[i])) + 1e-3));
    }
    EXPECT_LT(worst, 1e-3) << name;
    expert_tensors += name.find("moe.experts") != std::string::npos;
  }
  EXPECT_EQ(expert_tensors, 4);
  world->Barrier();  // rank 0's directory outlives the readers
  if (results != nullptr) *results = {sharded, single};
}

TEST(DistributedTrainTest, ShardedExpertsGiveTheOneProcessLosses) { ExpectEquivalent({}, 0); }

// training.precision BF16 over W workers: the tokens travel as bf16 (about half the bytes
// of the same job in fp32: the routing, and so the rows, may differ a little), the
// replicated parameters end bit-identical on every worker, and the losses follow one
// process's BF16 run (which moves no rows) within the rounding of the rows sent back.
TEST(DistributedTrainTest, Bf16WorkersSendHalfTheBytesAndKeepTheReplicasIdentical) {
  if (!Bf16GemmAvailable()) GTEST_SKIP() << Bf16GemmUnavailableReason();
  auto world = MakeMpiWorld(testing::kTestTimeout);
  flexmoe::Setup setup({"training.precision=BF16"});
  const TrainResult bf16 = setup.Run(world.get(), 0);
  const TrainResult single = setup.Run(nullptr, 0);
  setup.config.mutable_training()->set_precision(config::TrainingConfig::FP32);
  const TrainResult fp32 = setup.Run(world.get(), 0);

  ASSERT_EQ(bf16.step_losses.size(), single.step_losses.size());
  for (size_t i = 0; i < single.step_losses.size(); ++i) {
    EXPECT_NEAR(bf16.step_losses[i], single.step_losses[i], 1e-2 * single.step_losses[i])
        << "step " << i;
  }
  at::Tensor crc = at::tensor({static_cast<int64_t>(bf16.replicated_crc)}, at::kLong);
  at::Tensor all = world->AllGather(crc);
  for (int r = 0; r < world->size(); ++r) {
    EXPECT_EQ(all[r][0].item<int64_t>(), crc[0].item<int64_t>()) << "rank " << r;
  }
  ASSERT_EQ(bf16.epochs.size(), fp32.epochs.size());
  for (size_t e = 0; e < fp32.epochs.size(); ++e) {
    const double ratio = static_cast<double>(bf16.epochs[e].exchange_bytes) /
                         static_cast<double>(fp32.epochs[e].exchange_bytes);
    EXPECT_GT(ratio, 0.45) << "epoch " << e;
    EXPECT_LT(ratio, 0.55) << "epoch " << e;
  }
}

TEST(DistributedTrainTest, ReplicatedExpertGroupsGiveTheOneProcessLosses) {
  auto world = MakeMpiWorld(testing::kTestTimeout);
  if (world->size() % 2 != 0 || world->size() < 4) GTEST_SKIP() << "needs 4 ranks";
  world.reset();
  ExpectEquivalent({}, 2);  // two expert-parallel groups of 2: each expert has 2 replicas
}

TEST(DistributedTrainTest, AwkwardBatchesWithEmptySlices) {
  // 5 samples per global batch over up to 4 workers, and a short last batch: some workers
  // get one sample or none in a step and still take part in every collective.
  ExpectEquivalent({"training.batch_size=5", "training.epochs=1"}, 0);
}

TEST(DistributedTrainTest, ClassWeightedLossesFromTheBatchesLabelWeights) {
  // The loss denominator comes with each slice (the global batch's weight per label), not
  // from a collective: with class weights and slices of unequal label mix, W workers still
  // give one process's losses.
  ExpectEquivalent(
      {"training.class_weights=0.25,1,2.5", "training.batch_size=5", "training.epochs=1"}, 0);
}

TEST(DistributedTrainTest, ClassWeightsOfOneScaleLeaveTheLossesAlone) {
  // The denominator is the class-weighted sum of the batch's label weights: scaling every
  // class weight by 2.5 scales numerator and denominator alike (a denominator that ignored
  // the class weights would scale the losses by 2.5).
  const std::vector<std::string> shape = {"training.batch_size=5", "training.epochs=1"};
  std::vector<std::string> scaled = shape;
  scaled.push_back("training.class_weights=2.5,2.5,2.5");
  flexmoe::Setup plain_setup(shape), scaled_setup(scaled);  // not gtest's Setup
  testing::TempDir run;
  TrainResult plain = plain_setup.Run(nullptr, 0, run.Path("plain"));
  TrainResult weighted = scaled_setup.Run(nullptr, 0, run.Path("weighted"));
  ASSERT_EQ(plain.step_losses.size(), weighted.step_losses.size());
  ASSERT_FALSE(plain.step_losses.empty());
  for (size_t i = 0; i < plain.step_losses.size(); ++i) {
    EXPECT_NEAR(weighted.step_losses[i], plain.step_losses[i], 1e-5 * plain.step_losses[i])
        << "step " << i;
  }
}

TEST(DistributedTrainTest, CapacityDropsTheOneProcessRows) {
  // The capacity comes from the global batch's tokens, shared out in rank order: W workers
  // drop exactly the rows one process drops (and so train to the same losses).
  std::pair<TrainResult, TrainResult> results;
  ExpectEquivalent({"model.capacity_factor=0.6"}, 0, &results);
  const auto& [sharded, single] = results;
  ASSERT_EQ(sharded.epochs.size(), single.epochs.size());
  int64_t dropped = 0;
  for (size_t i = 0; i < single.epochs.size(); ++i) {
    EXPECT_EQ(sharded.epochs[i].dropped_rows, single.epochs[i].dropped_rows) << "epoch " << i;
    dropped += single.epochs[i].dropped_rows;
  }
  EXPECT_GT(dropped, 0);  // the capacity did bind
}

}  // namespace
}  // namespace flexmoe
