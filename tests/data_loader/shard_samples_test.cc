// Reading prepared data in bounded memory: ShardSamples gathers exactly what a dataset
// decoded in memory gathers, whatever its cache budget, and keeps its cache within it; the
// index read for serving is the index without ids; threads gathering at once (the
// loader's build pool) get the same batches, the cache and open files still bounded; an evaluation
// plan is the split in index order; prepared data whose data section differs from the config is
// refused by field.
#include "data_loader/shard_samples.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/plan_batch_source.h"
#include "data_loader/prepare.h"
#include "data_loader/prepared_check.h"
#include "data_loader/synth.h"
#include "proto/config_loader.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

class ShardSamplesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    config_ = new config::Config(Config({}));
    GenerateSynthetic(*config_, config_->data().input());
    PrepareDataset(*config_, config_->data().prepared_dir(), nullptr);
  }
  static void TearDownTestSuite() {
    delete config_;
    delete dir_;
  }
  static config::Config Config(std::vector<std::string> overrides) {
    overrides.insert(overrides.begin(),
                     {"data.input=" + dir_->Path("raw"), "data.prepared_dir=" + dir_->Path("prep"),
                      "synth.num_samples=500", "data.records_per_shard=64"});
    return LoadConfig(FLEXMOE_SOURCE_DIR "/configs/quickstart.textproto", overrides);
  }
  static testing::TempDir* dir_;
  static config::Config* config_;
};
testing::TempDir* ShardSamplesTest::dir_ = nullptr;
config::Config* ShardSamplesTest::config_ = nullptr;

void ExpectSameBatch(const DecodedBatch& a, const DecodedBatch& b) {
  ASSERT_EQ(a.size, b.size);
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.observed, b.observed);
  EXPECT_EQ(a.combination, b.combination);
  EXPECT_EQ(a.label, b.label);
  EXPECT_EQ(a.sample, b.sample);
}

TEST_F(ShardSamplesTest, GathersWhatTheDecodedDatasetGathersWithinItsBudget) {
  const PreparedDataset all = PreparedDataset::Open(config_->data().prepared_dir());
  const PreparedDataset serving = PreparedDataset::OpenForServing(config_->data().prepared_dir());
  const DecodedDataset decoded(all);
  std::vector<uint32_t> order(all.size());
  std::iota(order.begin(), order.end(), 0u);
  uint64_t state = 7;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[SplitMix64(&state) % i]);
  for (uint64_t budget : {uint64_t{0}, uint64_t{40} << 10, uint64_t{64} << 20}) {
    SCOPED_TRACE("cache budget " + std::to_string(budget));
    const ShardSamples samples(serving, budget);
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t b = 0; b < order.size(); b += 37) {
        std::vector<uint32_t> batch(order.begin() + b,
                                    order.begin() + std::min(order.size(), b + 37));
        ExpectSameBatch(samples.Gather(batch), decoded.Gather(batch));
      }
    }
    const ShardSamplesStats stats = samples.stats();
    EXPECT_LE(stats.peak_cached_bytes, budget);
    if (budget == 0) {
      EXPECT_EQ(stats.records_read, 2 * all.size());
    }
    // A budget that holds the dataset reads every record once.
    if (budget == uint64_t{64} << 20) {
      EXPECT_EQ(stats.records_read, all.size());
    }
    if (budget == uint64_t{40} << 10) {
      EXPECT_GT(stats.cached_bytes, uint64_t{20} << 10);
      EXPECT_GT(stats.records_read, all.size());
    }
  }
}

TEST_F(ShardSamplesTest, KeepsAtMostItsShardFilesOpen) {
  const PreparedDataset all = PreparedDataset::Open(config_->data().prepared_dir());
  const PreparedDataset serving = PreparedDataset::OpenForServing(config_->data().prepared_dir());
  ASSERT_GE(serving.meta.shard_files_size(), 6);  // 500 samples, 64 a shard
  const DecodedDataset decoded(all);
  std::vector<uint32_t> order(all.size());
  std::iota(order.begin(), order.end(), 0u);
  uint64_t state = 11;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[SplitMix64(&state) % i]);
  const size_t open_before = testing::OpenDescriptors();
  {
    const ShardSamples samples(serving, 0, 2);
    size_t most_open = 0;
    for (size_t b = 0; b < order.size(); b += 25) {
      std::vector<uint32_t> batch(order.begin() + b,
                                  order.begin() + std::min(order.size(), b + 25));
      ExpectSameBatch(samples.Gather(batch), decoded.Gather(batch));
      most_open = std::max(most_open, testing::OpenDescriptors() - open_before);
    }
    EXPECT_LE(most_open, 2u);
    const ShardSamplesStats stats = samples.stats();
    EXPECT_EQ(stats.peak_open_shards, 2u);
    EXPECT_GT(stats.shard_opens, static_cast<uint64_t>(serving.meta.shard_files_size()));
  }
  EXPECT_EQ(testing::OpenDescriptors(), open_before);
  EXPECT_THROW(ShardSamples(serving, 0, 0), Error);
}

TEST_F(ShardSamplesTest, ThreadsGatheringAtOnceGetTheSameBatchesWithinTheBounds) {
  const PreparedDataset all = PreparedDataset::Open(config_->data().prepared_dir());
  const PreparedDataset serving = PreparedDataset::OpenForServing(config_->data().prepared_dir());
  const DecodedDataset decoded(all);
  const uint64_t budget = uint64_t{40} << 10;  // smaller than the dataset: evictions race
  const ShardSamples samples(serving, budget, 2);
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::vector<int> mismatches(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint32_t> order(all.size());
      std::iota(order.begin(), order.end(), 0u);
      uint64_t state = 100 + t;
      for (size_t i = order.size(); i > 1; --i) {
        std::swap(order[i - 1], order[SplitMix64(&state) % i]);
      }
      for (int pass = 0; pass < 3; ++pass) {
        for (size_t b = 0; b < order.size(); b += 19) {
          std::vector<uint32_t> batch(order.begin() + b,
                                      order.begin() + std::min(order.size(), b + 19));
          const DecodedBatch got = samples.Gather(batch), want = decoded.Gather(batch);
          if (got.features != want.features || got.observed != want.observed ||
              got.sample != want.sample || got.label != want.label) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(kThreads, 0));
  const ShardSamplesStats stats = samples.stats();
  EXPECT_LE(stats.peak_cached_bytes, budget);
  EXPECT_LE(stats.cached_bytes, budget);
  // At most the bound, plus one reader for each thread reading at the same moment.
  EXPECT_LE(stats.peak_open_shards, 2u + kThreads);
  EXPECT_LE(stats.open_shards, 2u);
  EXPECT_GT(stats.cache_hits + stats.records_read, 0u);
}

TEST_F(ShardSamplesTest, TheServingIndexIsTheIndexWithoutIds) {
  const PreparedDataset all = PreparedDataset::Open(config_->data().prepared_dir());
  const PreparedDataset serving = PreparedDataset::OpenForServing(config_->data().prepared_dir());
  data::DatasetIndex expected = all.index;
  expected.clear_id();
  EXPECT_EQ(serving.index.SerializeAsString(), expected.SerializeAsString());
  const PreparedDataset meta = PreparedDataset::OpenMeta(config_->data().prepared_dir());
  EXPECT_EQ(meta.index.split_size(), 0);
  EXPECT_EQ(meta.size(), all.size());
  EXPECT_EQ(meta.split_size(1), SamplesOfSplit(all.index, 1).size());
}

TEST_F(ShardSamplesTest, AnEvaluationPlanIsTheSplitInIndexOrder) {
  const PreparedDataset all = PreparedDataset::Open(config_->data().prepared_dir());
  const std::vector<uint32_t> validation = SamplesOfSplit(all.index, 1);
  PlanOptions options = EvaluationPlanOptions(3, config_->data().modalities_size());
  options.global_batch = 10;
  options.remainder = config::TrainingConfig::DROP;  // no part in an evaluation pass
  const EpochPlan plan = PlanEpoch(all, 1, options);
  std::vector<uint32_t> visited;
  for (int64_t s = 0; s < plan.steps(); ++s) {
    EXPECT_LE(plan.batches[s].size(), 10u);
    for (float w : plan.weights[s]) EXPECT_EQ(w, 1.0f);
    visited.insert(visited.end(), plan.batches[s].begin(), plan.batches[s].end());
  }
  EXPECT_EQ(visited, validation);
}

TEST_F(ShardSamplesTest, PreparedDataOfAnotherDataSectionIsRefusedByField) {
  const std::string hint = "flexmoe prepare --config quickstart.textproto";
  EXPECT_NO_THROW(OpenPreparedFor(config_->data(), hint));
  // Where and how big the shards are, and the loader's cache, are not what is computed.
  EXPECT_NO_THROW(
      OpenPreparedFor(Config({"data.records_per_shard=7", "data.loader_cache_mb=1"}).data(), hint));
  try {
    OpenPreparedFor(Config({"data.scaling=NO_SCALING"}).data(), hint);
    ADD_FAILURE() << "data prepared with another scaling was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string what = e.what();
    EXPECT_NE(what.find("data.scaling: STANDARD when prepared, NO_SCALING in the config"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find(hint), std::string::npos) << what;
  }
  try {
    OpenPreparedFor(Config({"data.prepared_dir=" + dir_->Path("nothing")}).data(), hint);
    ADD_FAILURE() << "a missing prepared dataset was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace flexmoe
