// cluster/metrics: the merge of the workers' step records, the order in which a job's
// records are written, metrics.jsonl continued after a checkpoint, and the TensorBoard
// scalars of the records (read back through the Event messages, CRCs checked).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/metrics/metrics_writer.h"
#include "cluster/metrics/step_records.h"
#include "cluster/metrics/tensorboard.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

using Json = nlohmann::json;

// Worker `rank`'s record of global step `step`: 2 experts, 3 combinations, 1 sparse layer.
Json StepRecord(int rank, int64_t step, std::vector<int64_t> counts, double seconds = 1.0) {
  return {{"event", "step"},
          {"seed", 7},
          {"epoch", 0},
          {"step", step},
          {"global_step", step},
          {"workers", 2},
          {"loss", 0.5},
          {"worker", rank},
          {"steps", 2},
          {"samples", 10 + rank},
          {"seconds", seconds},
          {"step_ms", {{"compute", 1.0 + rank}, {"exchange", 2.0 - rank}}},
          {"tokens", {{"layers", {0}}, {"experts", 2}, {"combinations", 3}, {"counts", {counts}}}}};
}

TEST(StepRecords, MergeSumsSamplesAndTokensAndTakesTheSlowestPhase) {
  Json line = MergeStepRecords(
      {StepRecord(0, 4, {1, 0, 2, 0, 3, 0}, 2.0), StepRecord(1, 4, {0, 5, 0, 1, 0, 0}, 4.0)});
  EXPECT_EQ(line["event"], "step");
  EXPECT_EQ(line["global_step"], 4);
  EXPECT_EQ(line["loss"], 0.5);
  EXPECT_EQ(line["samples"], 21);
  EXPECT_DOUBLE_EQ(line["samples_per_s"].get<double>(), 21 / 4.0);
  EXPECT_EQ(line["step_ms"]["compute"], 2.0);
  EXPECT_EQ(line["step_ms"]["exchange"], 2.0);
  EXPECT_EQ(line["worker_step_ms"].size(), 2u);
  EXPECT_EQ(line["tokens"]["counts"][0], Json({1, 5, 2, 1, 3, 0}));
  EXPECT_FALSE(line.contains("worker"));
}

TEST(StepRecords, MergeRefusesRecordsOfOtherStepsOrShapes) {
  EXPECT_THROW(MergeStepRecords(
                   {StepRecord(0, 4, {0, 0, 0, 0, 0, 0}), StepRecord(1, 5, {0, 0, 0, 0, 0, 0})}),
               Error);
  EXPECT_THROW(
      MergeStepRecords({StepRecord(0, 4, {0, 0, 0, 0, 0, 0}), StepRecord(1, 4, {0, 0, 0})}), Error);
}

// Above metrics.per_worker_limit the line keeps its size: the spread of the workers' steps,
// the slowest named and the straggler, not every worker's phases.
TEST(StepRecords, ALargeJobLogsTheSpreadAndTheSlowestNotEveryWorker) {
  const int workers = 200;
  std::vector<Json> parts;
  for (int r = 0; r < workers; ++r) {
    Json part = StepRecord(r, 4, {0, 0, 0, 0, 0, 0});
    // Every worker 10 ms a step but worker 137 (30 ms) and worker 42 (12 ms).
    part["step_ms"] = {{"compute", r == 137 ? 30.0 : r == 42 ? 12.0 : 10.0}};
    parts.push_back(std::move(part));
  }
  const Json large = MergeStepRecords(parts, /*per_worker_limit=*/64);
  EXPECT_FALSE(large.contains("worker_step_ms"));
  EXPECT_EQ(large["straggler"], 137);
  EXPECT_EQ(large["slowest"][0]["worker"], 137);
  EXPECT_EQ(large["slowest"][1]["worker"], 42);
  EXPECT_EQ(large["slowest"].size(), 5u);
  EXPECT_DOUBLE_EQ(large["worker_total_ms"]["p50"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(large["worker_total_ms"]["max"].get<double>(), 30.0);
  int64_t binned = 0;
  for (const Json& n : large["worker_total_ms"]["bins"]) binned += n.get<int64_t>();
  EXPECT_EQ(binned, workers);
  EXPECT_EQ(large["worker_total_ms"]["bins"].back(), 1);  // worker 137 alone at the top
  // The same job under a larger limit keeps every worker; the lines read back alike.
  const Json full = MergeStepRecords(parts, /*per_worker_limit=*/256);
  EXPECT_EQ(full["worker_step_ms"].size(), static_cast<size_t>(workers));
  const StepLine back = *StepLineFrom(large);
  EXPECT_EQ(back.straggler, 137);
  EXPECT_TRUE(back.worker_step_ms.empty());
  EXPECT_EQ(StepLineFrom(full)->straggler, 137);
  EXPECT_LT(large.dump().size(), full.dump().size() / 5);
}

TEST(StepRecords, NoStragglerWhenTheSlowestIsWithinAFifthOfTheMedian) {
  const Json line = MergeStepRecords(
      {StepRecord(0, 4, {0, 0, 0, 0, 0, 0}), StepRecord(1, 4, {0, 0, 0, 0, 0, 0})});
  EXPECT_TRUE(line["straggler"].is_null());  // 3 ms each
}

TEST(RecordJoiner, RefusesAWorkersSecondPartOfAStep) {
  RecordJoiner joiner(2);
  joiner.Add(1, StepRecord(1, 4, {0, 0, 0, 0, 0, 0}));
  EXPECT_THROW(joiner.Add(1, StepRecord(1, 4, {0, 0, 0, 0, 0, 0})), Error);
}

TEST(RecordJoiner, WritesInWorkerZerosOrderOnceEveryWorkersPartCame) {
  RecordJoiner joiner(2);
  EXPECT_TRUE(joiner.Open("").size() == 1);
  // Worker 0's step 0 and its epoch line come before worker 1's step 0.
  EXPECT_TRUE(joiner.Add(0, StepRecord(0, 0, {1, 0, 0, 0, 0, 0})).empty());
  EXPECT_TRUE(joiner.Add(0, {{"event", "epoch"}, {"epoch", 0}}).empty());
  // Worker 1 is ahead for step 1: held until worker 0's.
  std::vector<MetricsItem> ready = joiner.Add(1, StepRecord(1, 0, {0, 1, 0, 0, 0, 0}));
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_EQ(ready[0].record["event"], "step");
  EXPECT_EQ(ready[0].record["tokens"]["counts"][0], Json({1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(ready[1].record["event"], "epoch");
  EXPECT_TRUE(joiner.Add(1, StepRecord(1, 1, {0, 0, 0, 0, 0, 0})).empty());
  EXPECT_EQ(joiner.pending(), 1u);
  ASSERT_EQ(joiner.Add(0, StepRecord(0, 1, {0, 0, 0, 0, 0, 0})).size(), 1u);
  EXPECT_EQ(joiner.pending(), 0u);
  // Only worker 0 sends run records; no worker sends a step twice; ranks are the job's.
  EXPECT_THROW(joiner.Add(1, {{"event", "epoch"}}), Error);
  joiner.Add(1, StepRecord(1, 2, {0, 0, 0, 0, 0, 0}));
  EXPECT_THROW(joiner.Add(1, StepRecord(1, 2, {0, 0, 0, 0, 0, 0})), Error);
  EXPECT_THROW(joiner.Add(2, StepRecord(2, 3, {0, 0, 0, 0, 0, 0})), Error);
}

TEST(MetricsWriter, ContinuesAfterTheCheckpointsLinesAndRefusesAShorterLog) {
  testing::TempDir dir;
  {
    MetricsWriter writer(dir.Path("run"), /*tensorboard=*/false);
    for (int i = 0; i < 5; ++i) writer.Write({{"event", "epoch"}, {"epoch", i}});
    EXPECT_EQ(writer.lines(), 5);
  }
  MetricsWriter writer(dir.Path("run"), false);
  EXPECT_EQ(writer.lines(), 5);  // counted from the file
  writer.ContinueAt(3);
  writer.Write({{"event", "resume"}});
  EXPECT_EQ(CountLines(dir.Path("run/metrics.jsonl")), 4);
  std::ifstream in(dir.Path("run/metrics.jsonl"));
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  EXPECT_EQ(Json::parse(lines[2])["epoch"], 2);
  EXPECT_EQ(Json::parse(lines[3])["event"], "resume");
  EXPECT_THROW(writer.ContinueAt(9), Error);
  EXPECT_EQ(CountLines(dir.Path("run/metrics.jsonl")), 4);  // unchanged
}

TEST(MetricsWriter, TensorBoardScalarsReadBackWithTheExpertLoadPerCombination) {
  testing::TempDir dir;
  {
    MetricsWriter writer(dir.Path("run"), /*tensorboard=*/true);
    writer.Write(MergeStepRecords(
        {StepRecord(0, 4, {1, 0, 2, 0, 3, 0}), StepRecord(1, 4, {0, 5, 0, 0, 0, 0})}));
    writer.Write({{"event", "epoch"},
                  {"global_step", 6},
                  {"train_loss", 0.25},
                  {"validation", {{"acc", 0.75}, {"f1", nullptr}}}});
  }
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(dir.Path("run/tensorboard"))) {
    files.push_back(f.path().string());
  }
  ASSERT_EQ(files.size(), 1u);
  std::map<std::string, std::pair<int64_t, double>> seen;
  for (const std::string& record : ReadTfRecords(files[0])) {
    tensorboard::Event event;
    ASSERT_TRUE(event.ParseFromString(record));
    for (const auto& v : event.summary().value()) seen[v.tag()] = {event.step(), v.simple_value()};
  }
  EXPECT_EQ(seen["step/loss"], std::make_pair(int64_t{5}, 0.5));
  // Summed counts {1, 5, 2, 0, 3, 0}, expert-major: expert 0 got {1, 5, 2} tokens of
  // combinations 0, 1, 2; expert 1 got {0, 3, 0}.
  EXPECT_EQ(seen["experts/layer0/expert00"].second, 8);
  EXPECT_EQ(seen["experts/layer0/expert01"].second, 3);
  EXPECT_EQ(seen["expert_load/layer0/c01/expert00"].second, 5);
  EXPECT_EQ(seen.count("expert_load/layer0/c00/expert01"), 0u);  // zero entries are left out
  EXPECT_EQ(seen["epoch/train_loss"], std::make_pair(int64_t{6}, 0.25));
  EXPECT_EQ(seen["validation/accuracy"].second, 0.75);
  EXPECT_EQ(seen.count("validation/macro_f1"), 0u);  // NaN is written as null and skipped
}

}  // namespace
}  // namespace flexmoe
