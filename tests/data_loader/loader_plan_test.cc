// The distributed epoch plan: equal to the single-process batches, identical in another
// process, equal steps for 1 to 8 workers, every sample once per shuffled epoch (with the
// counted remainder under DROP and PAD), warm-up order, per-combination batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>

#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"
#include "data_loader/combinations.h"
#include "data_loader/epoch_plan.h"
#include "tests/testing/subprocess.h"

namespace flexmoe {
namespace {

using config::TrainingConfig;

constexpr char kChildEnv[] = "FLEXMOE_PLAN_HASH_CHILD";

// n samples, M = 3 (7 combinations), about 70% training; deterministic in `seed`.
data::DatasetIndex MakeIndex(int n, uint64_t seed, int num_modalities = 3) {
  data::DatasetIndex index;
  uint64_t state = seed;
  const uint64_t combinations = (1u << num_modalities) - 1;
  for (int i = 0; i < n; ++i) {
    index.add_id("s" + std::to_string(i));
    index.add_split(SplitMix64(&state) % 10 < 7 ? 0 : 1 + SplitMix64(&state) % 2);
    index.add_combination(static_cast<uint32_t>(SplitMix64(&state) % combinations));
    index.add_label(static_cast<int32_t>(SplitMix64(&state) % 2));
    index.add_shard(0);
    index.add_offset(0);
  }
  return index;
}

PlanOptions Options(int world, int batch, TrainingConfig::Remainder remainder,
                    TrainingConfig::Batching batching, int epoch = 3,
                    EpochPhase phase = EpochPhase::kShuffled) {
  PlanOptions o;
  o.seed = 17;
  o.epoch = epoch;
  o.phase = phase;
  o.world_size = world;
  o.global_batch = batch;
  o.remainder = remainder;
  o.batching = batching;
  o.num_modalities = 3;
  return o;
}

uint64_t HashPlan(const EpochPlan& plan, uint64_t h = 1469598103934665603ull) {
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  };
  mix(plan.batches.size());
  for (size_t s = 0; s < plan.batches.size(); ++s) {
    for (uint32_t i : plan.batches[s]) mix(i);
    for (float w : plan.weights[s]) mix(w == 0 ? 0 : 1);
    mix(~0ull);
  }
  mix(plan.dropped);
  mix(plan.padded);
  mix(static_cast<uint64_t>(plan.world_size));
  return h;
}

// A hash over a grid of options, for the cross-process comparison.
uint64_t HashOfGrid() {
  const data::DatasetIndex index = MakeIndex(503, 5);
  uint64_t h = 1469598103934665603ull;
  for (int epoch : {0, 1, 7}) {
    for (auto phase : {EpochPhase::kWarmup, EpochPhase::kShuffled}) {
      for (auto remainder : {TrainingConfig::KEEP, TrainingConfig::DROP, TrainingConfig::PAD}) {
        for (auto batching : {TrainingConfig::MIXED, TrainingConfig::BY_COMBINATION}) {
          h = HashPlan(PlanEpoch(index, 0, Options(3, 13, remainder, batching, epoch, phase)), h);
        }
      }
    }
  }
  return h;
}

std::vector<int> ModalityCounts(const data::DatasetIndex& index, int m) {
  Combinations combinations(m);
  std::vector<int> counts;
  for (uint32_t c : index.combination()) counts.push_back(combinations.Size(c));
  return counts;
}

TEST(PlanTest, KeepOnOneWorkerEqualsTheSingleProcessBatches) {
  const data::DatasetIndex index = MakeIndex(211, 1);
  const auto samples = SamplesOfSplit(index, 0);
  for (int epoch : {0, 4}) {
    const auto phase = epoch == 0 ? EpochPhase::kWarmup : EpochPhase::kShuffled;
    const EpochPlan plan = PlanEpoch(
        index, 0, Options(1, 8, TrainingConfig::KEEP, TrainingConfig::MIXED, epoch, phase));
    const auto expected =
        Batches(EpochOrder(samples, ModalityCounts(index, 3), 17, epoch, phase), 8);
    EXPECT_EQ(plan.batches, expected);
    for (const auto& w : plan.weights) {
      EXPECT_EQ(w, std::vector<float>(w.size(), 1.0f));
    }
    EXPECT_EQ(plan.dropped, 0u);
    EXPECT_EQ(plan.padded, 0u);
  }
}

TEST(PlanTest, PrintsItsHashWhenRunAsTheChild) {
  if (std::getenv(kChildEnv) == nullptr) GTEST_SKIP() << "only in the child process";
  std::printf("plan-hash: %016llx\n", static_cast<unsigned long long>(HashOfGrid()));
}

TEST(PlanTest, IdenticalWhenBuiltInAnotherProcess) {
  char self[4096] = {};
  ASSERT_GT(::readlink("/proc/self/exe", self, sizeof(self) - 1), 0);
  ::setenv(kChildEnv, "1", 1);
  testing::CommandResult child =
      testing::RunCommand({self, "--gtest_filter=PlanTest.PrintsItsHashWhenRunAsTheChild"}, 60);
  ::unsetenv(kChildEnv);
  ASSERT_EQ(child.exit_code, 0) << child.output;
  char expected[64];
  std::snprintf(expected, sizeof(expected), "plan-hash: %016llx",
                static_cast<unsigned long long>(HashOfGrid()));
  EXPECT_NE(child.output.find(expected), std::string::npos) << "expected " << expected << " in:\n"
                                                            << child.output;
}

TEST(PlanTest, EqualStepsForOneToEightWorkersWithAwkwardSizes) {
  for (int n : {1, 2, 7, 37, 101}) {
    const data::DatasetIndex index = MakeIndex(n, 100 + n);
    for (int batch : {1, 3, 5, 8, 13, 64}) {
      for (auto remainder : {TrainingConfig::KEEP, TrainingConfig::DROP, TrainingConfig::PAD}) {
        for (auto batching : {TrainingConfig::MIXED, TrainingConfig::BY_COMBINATION}) {
          const EpochPlan one = PlanEpoch(index, 0, Options(1, batch, remainder, batching));
          for (int world = 1; world <= 8; ++world) {
            SCOPED_TRACE("n " + std::to_string(n) + " batch " + std::to_string(batch) + " world " +
                         std::to_string(world) + " remainder " + std::to_string(remainder) +
                         " batching " + std::to_string(batching));
            const EpochPlan plan = PlanEpoch(index, 0, Options(world, batch, remainder, batching));
            ASSERT_EQ(plan.steps(), one.steps());
            ASSERT_EQ(plan.batches, one.batches);
            for (int64_t s = 0; s < plan.steps(); ++s) {
              // The slices tile the global batch in order, sizes differing by at most one.
              size_t at = 0, smallest = SIZE_MAX, largest = 0;
              for (int w = 0; w < world; ++w) {
                const auto [begin, end] = plan.Slice(s, w);
                ASSERT_EQ(begin, at);
                ASSERT_LE(begin, end);
                smallest = std::min(smallest, end - begin);
                largest = std::max(largest, end - begin);
                at = end;
              }
              EXPECT_EQ(at, plan.batches[s].size());
              EXPECT_LE(largest - smallest, 1u);
            }
          }
        }
      }
    }
  }
}

TEST(PlanTest, ShuffledEpochSeesEverySampleOnceAcrossWorkers) {
  const data::DatasetIndex index = MakeIndex(389, 3);
  const auto training = SamplesOfSplit(index, 0);
  for (auto batching : {TrainingConfig::MIXED, TrainingConfig::BY_COMBINATION}) {
    for (auto remainder : {TrainingConfig::KEEP, TrainingConfig::DROP, TrainingConfig::PAD}) {
      for (int world = 1; world <= 8; ++world) {
        SCOPED_TRACE("batching " + std::to_string(batching) + " remainder " +
                     std::to_string(remainder) + " world " + std::to_string(world));
        const EpochPlan plan = PlanEpoch(index, 0, Options(world, 12, remainder, batching));
        std::map<uint32_t, int> seen, padding;
        for (int64_t s = 0; s < plan.steps(); ++s) {
          for (int w = 0; w < world; ++w) {
            const auto [begin, end] = plan.Slice(s, w);
            for (size_t k = begin; k < end; ++k) {
              (plan.weights[s][k] == 1.0f ? seen : padding)[plan.batches[s][k]]++;
            }
          }
        }
        uint64_t padded = 0;
        for (const auto& [sample, count] : padding) padded += count;
        for (const auto& [sample, count] : seen) EXPECT_EQ(count, 1) << "sample " << sample;
        EXPECT_EQ(seen.size() + plan.dropped, training.size());
        EXPECT_EQ(padded, plan.padded);
        if (remainder != TrainingConfig::DROP) {
          EXPECT_EQ(plan.dropped, 0u);
        }
        if (remainder != TrainingConfig::PAD) {
          EXPECT_EQ(plan.padded, 0u);
        }
        if (remainder != TrainingConfig::KEEP) {
          for (const auto& b : plan.batches) EXPECT_EQ(b.size(), 12u);
        }
        if (batching == TrainingConfig::MIXED && remainder == TrainingConfig::DROP) {
          EXPECT_EQ(plan.dropped, training.size() % 12);
        }
      }
    }
  }
}

TEST(PlanTest, RemainderIsDroppedOrPaddedFromTheStartOfTheOrder) {
  const data::DatasetIndex index = MakeIndex(60, 9);
  const auto training = SamplesOfSplit(index, 0);
  const size_t batch = 7;
  ASSERT_NE(training.size() % batch, 0u);
  const EpochPlan keep =
      PlanEpoch(index, 0, Options(2, batch, TrainingConfig::KEEP, TrainingConfig::MIXED));
  const EpochPlan drop =
      PlanEpoch(index, 0, Options(2, batch, TrainingConfig::DROP, TrainingConfig::MIXED));
  const EpochPlan pad =
      PlanEpoch(index, 0, Options(2, batch, TrainingConfig::PAD, TrainingConfig::MIXED));
  const size_t short_size = training.size() % batch;
  EXPECT_EQ(keep.batches.back().size(), short_size);
  EXPECT_EQ(drop.steps(), keep.steps() - 1);
  EXPECT_EQ(drop.dropped, short_size);
  ASSERT_EQ(pad.steps(), keep.steps());
  EXPECT_EQ(pad.padded, batch - short_size);
  std::vector<uint32_t> expected = keep.batches.back();
  std::vector<float> weights(short_size, 1.0f);
  for (size_t k = 0; expected.size() < batch; ++k) {
    expected.push_back(keep.batches[0][k]);
    weights.push_back(0.0f);
  }
  EXPECT_EQ(pad.batches.back(), expected);
  EXPECT_EQ(pad.weights.back(), weights);

  // Fewer samples than one batch: padding cycles through the order.
  const data::DatasetIndex tiny = MakeIndex(3, 2);
  const size_t n = SamplesOfSplit(tiny, 0).size();
  ASSERT_GT(n, 0u);
  const EpochPlan cycled =
      PlanEpoch(tiny, 0, Options(3, 10, TrainingConfig::PAD, TrainingConfig::MIXED));
  ASSERT_EQ(cycled.steps(), 1);
  EXPECT_EQ(cycled.batches[0].size(), 10u);
  EXPECT_EQ(cycled.padded, 10 - n);
  const EpochPlan none =
      PlanEpoch(tiny, 0, Options(3, 10, TrainingConfig::DROP, TrainingConfig::MIXED));
  EXPECT_EQ(none.steps(), 0);
  EXPECT_EQ(none.dropped, n);
}

TEST(PlanTest, WarmupVisitsMoreModalitiesFirst) {
  const data::DatasetIndex index = MakeIndex(257, 4);
  const auto counts = ModalityCounts(index, 3);
  // Mixed: the concatenated batches are a stable sort by count, most first.
  const EpochPlan mixed = PlanEpoch(
      index, 0, Options(4, 9, TrainingConfig::KEEP, TrainingConfig::MIXED, 0, EpochPhase::kWarmup));
  std::vector<uint32_t> order;
  for (const auto& b : mixed.batches) order.insert(order.end(), b.begin(), b.end());
  ASSERT_EQ(order.size(), SamplesOfSplit(index, 0).size());
  for (size_t k = 1; k < order.size(); ++k) {
    const int before = counts[order[k - 1]], now = counts[order[k]];
    ASSERT_GE(before, now) << "position " << k;
    if (before == now) {
      EXPECT_LT(order[k - 1], order[k]) << "stable at position " << k;
    }
  }
  // By combination: one combination per batch, sizes non-increasing, the combination's
  // samples in index order.
  const EpochPlan grouped = PlanEpoch(
      index, 0,
      Options(4, 9, TrainingConfig::KEEP, TrainingConfig::BY_COMBINATION, 0, EpochPhase::kWarmup));
  int previous_size = 4;
  uint32_t previous_combination = 0;
  std::map<uint32_t, uint32_t> last_sample;
  for (const auto& b : grouped.batches) {
    ASSERT_FALSE(b.empty());
    const uint32_t c = index.combination(b[0]);
    for (uint32_t i : b) ASSERT_EQ(index.combination(i), c);
    ASSERT_LE(counts[b[0]], previous_size);
    if (counts[b[0]] == previous_size) {
      EXPECT_GE(c, previous_combination);
    }
    previous_size = counts[b[0]];
    previous_combination = c;
    for (uint32_t i : b) {
      if (last_sample.count(c)) {
        EXPECT_GT(i, last_sample[c]);
      }
      last_sample[c] = i;
    }
  }
}

TEST(PlanTest, ByCombinationShuffleIsKeyedBySeedAndEpoch) {
  const data::DatasetIndex index = MakeIndex(300, 6);
  auto plan = [&](uint64_t seed, int epoch) {
    PlanOptions o = Options(2, 5, TrainingConfig::KEEP, TrainingConfig::BY_COMBINATION, epoch);
    o.seed = seed;
    return PlanEpoch(index, 0, o);
  };
  const EpochPlan a = plan(1, 5);
  EXPECT_EQ(a.batches, plan(1, 5).batches);
  EXPECT_NE(a.batches, plan(1, 6).batches);
  EXPECT_NE(a.batches, plan(2, 5).batches);
  // Not ordered by combination any more.
  bool sorted = true;
  for (size_t s = 1; s < a.batches.size(); ++s) {
    sorted &= index.combination(a.batches[s - 1][0]) <= index.combination(a.batches[s][0]);
  }
  EXPECT_FALSE(sorted);
  for (const auto& b : a.batches) {
    for (uint32_t i : b) EXPECT_EQ(index.combination(i), index.combination(b[0]));
  }
}

TEST(PlanTest, RejectsBadOptions) {
  const data::DatasetIndex index = MakeIndex(20, 1);
  auto expect_invalid = [&](PlanOptions o, const std::string& text) {
    try {
      PlanEpoch(index, 0, o);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  PlanOptions o = Options(1, 4, TrainingConfig::KEEP, TrainingConfig::MIXED);
  o.world_size = 0;
  expect_invalid(o, "world size 0");
  o = Options(1, 0, TrainingConfig::KEEP, TrainingConfig::MIXED);
  expect_invalid(o, "global batch 0");
  o = Options(1, 4, TrainingConfig::KEEP, TrainingConfig::MIXED);
  o.num_modalities = 0;
  expect_invalid(o, "num_modalities");
  o.num_modalities = 2;  // combinations 3..6 of M = 3 are out of range for M = 2
  expect_invalid(o, "out of range");
}

}  // namespace
}  // namespace flexmoe
