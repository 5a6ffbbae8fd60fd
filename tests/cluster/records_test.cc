// The typed run artifacts: metrics.jsonl's epoch and test records (run_records.h) and
// ensemble.json and job.json (job_record.h) round-trip through their one JSON form; undefined
// scores are null; records from an older flexmoe (fields absent) read with defaults; a field of the
// wrong type is refused as kDataLoss naming where.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "cluster/base/error.h"
#include "cluster/metrics/job_record.h"
#include "cluster/metrics/run_records.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

TEST(RunRecordsTest, EpochLineRoundTrip) {
  EpochLine line;
  line.seed = 3;
  line.epoch = 2;
  line.global_step = 40;
  line.workers = 2;
  line.warmup = true;
  line.train_loss = 0.5;
  line.expert_imbalance = 1.25;
  line.repacked = RepackRecord{1.5, 1.1, PlacementMap::Balanced({1}, 4, 2)};
  line.step_ms = {1, 2, 3, 4};
  line.validation = {100, 0.75, 0.7, kNoScore};
  line.best_epoch = 1;
  const nlohmann::json json = ToJson(line);
  EXPECT_EQ(json["event"], "epoch");
  EXPECT_EQ(json["phase"], "warmup");
  EXPECT_TRUE(json["validation"]["auc"].is_null());
  const std::optional<EpochLine> back = EpochLineFrom(nlohmann::json::parse(json.dump()));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->global_step, 40);
  EXPECT_TRUE(back->warmup);
  EXPECT_DOUBLE_EQ(back->expert_imbalance, 1.25);
  ASSERT_TRUE(back->repacked.has_value());
  EXPECT_EQ(back->repacked->placement, line.repacked->placement);
  EXPECT_DOUBLE_EQ(back->step_ms.reduce, 3);
  EXPECT_EQ(back->validation.n, 100);
  EXPECT_TRUE(std::isnan(back->validation.auc));
  EXPECT_EQ(ToJson(*back), json);
  EXPECT_FALSE(TestLineFrom(json).has_value());  // another event
}

TEST(RunRecordsTest, TestLineAndOlderRecords) {
  TestLine line;
  line.best_epoch = 4;
  line.test = {50, 0.8, 0.79, 0.9};
  line.validation = {40, 0.7, 0.69, 0.85};
  const std::optional<TestLine> back = TestLineFrom(ToJson(line));
  ASSERT_TRUE(back.has_value());
  EXPECT_DOUBLE_EQ(back->test.auc, 0.9);
  EXPECT_DOUBLE_EQ(back->validation.f1, 0.69);
  // An epoch record without the fields added later (repacked, step_ms, workers).
  const std::optional<EpochLine> old =
      EpochLineFrom({{"event", "epoch"}, {"epoch", 0}, {"train_loss", 1.0}});
  ASSERT_TRUE(old.has_value());
  EXPECT_FALSE(old->repacked.has_value());
  EXPECT_EQ(old->workers, 1);
  EXPECT_TRUE(std::isnan(old->validation.acc));
  try {
    EpochLineFrom({{"event", "epoch"}, {"epoch", "first"}});
    ADD_FAILURE() << "accepted a string epoch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("metrics record"), std::string::npos) << e.what();
  }
}

TEST(RunRecordsTest, EnsembleRecordRoundTripAndRefusals) {
  EnsembleRecord record;
  record.seeds = {1, 2, 3};
  record.validation = {600, 0.8, 0.7, 0.86, 0.31, 0.1};
  record.test_calibrated = {600, 0.81, 0.72, 0.85, 0.30, 0.09};
  record.test_per_combination["a+b"] = {50, 0.9, 0.8, kNoScore};
  const nlohmann::json json = nlohmann::json::parse(ToJson(record).dump());
  EXPECT_TRUE(json["test_per_combination"]["a+b"]["auc"].is_null());
  const EnsembleRecord back = EnsembleRecordFrom(json, "ensemble.json");
  EXPECT_EQ(back.seeds, record.seeds);
  EXPECT_DOUBLE_EQ(back.validation.auc, 0.86);
  EXPECT_DOUBLE_EQ(back.test_calibrated.log_loss, 0.30);
  ASSERT_EQ(back.test_per_combination.count("a+b"), 1u);
  EXPECT_TRUE(std::isnan(back.test_per_combination.at("a+b").auc));
  for (const char* bad : {R"({"validation": {}})", R"({"seeds": "1,2"})", "[]"}) {
    try {
      EnsembleRecordFrom(nlohmann::json::parse(bad), "run/ensemble.json");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
      EXPECT_NE(std::string(e.what()).find("run/ensemble.json"), std::string::npos) << e.what();
    }
  }
}

TEST(JobRecordTest, RoundTripAndRefusals) {
  testing::TempDir dir;
  JobRecord job;
  job.job_id = "job-1";
  job.state = "failed";
  job.coordinator = "127.0.0.1:5000";
  job.workers = 2;
  job.members.push_back({"worker", 0, "node1", 0, 42, "stopped"});
  job.members.push_back({"loader", 0, "node1", 6000, 43, "failed"});
  job.placement = PlacementMap::Balanced({1, 3}, 4, 2);
  job.reason = "loader 0 died";
  job.culprit = JobMemberRecord{"loader", 0, "node1", 0, 43, ""};
  {
    std::ofstream out(dir.Path("job.json"));
    out << JobRecordToJson(job).dump(2);
  }
  const JobRecord back = ReadJobRecord(dir.Path(""));
  EXPECT_EQ(back.state, "failed");
  ASSERT_EQ(back.members.size(), 2u);
  EXPECT_EQ(back.members[1].port, 6000);
  EXPECT_EQ(back.placement, job.placement);
  ASSERT_TRUE(back.culprit.has_value());
  EXPECT_EQ(back.culprit->pid, 43);
  EXPECT_EQ(JobRecordToJson(back), JobRecordToJson(job));

  nlohmann::json bad = JobRecordToJson(job);
  bad["workers"] = "two";
  try {
    JobRecordFromJson(bad, "run/job.json");
    ADD_FAILURE() << "accepted a string worker count";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("run/job.json"), std::string::npos) << e.what();
  }
  try {
    ReadJobRecord(dir.Path("nowhere"));
    ADD_FAILURE() << "read a job.json that is not there";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace flexmoe
