// The run records of metrics.jsonl (docs/metrics.md) as typed values, each with one
// to-JSON and one from-JSON: the trainer writes them (trainer/train_log.cc), and the
// TensorBoard scalars (metrics_writer.cc), the report's curves (inference/report.cc) and
// tune's scores (tune/tuner.cc) read them. Step records, merged over the workers, are
// step_records.h's.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cluster/base/expert_placement.h"

namespace flexmoe {

inline constexpr double kNoScore = std::numeric_limits<double>::quiet_NaN();

// A split's overall scores; NaN (JSON null) where a score is undefined (one class only).
struct ScoreRecord {
  int64_t n = 0;
  double acc = kNoScore, f1 = kNoScore, auc = kNoScore;
};

// Mean milliseconds a step spent per phase.
struct PhaseMsRecord {
  double compute = 0, exchange = 0, reduce = 0, data = 0;
};

// A LOAD_AWARE re-pack after an epoch: the largest imbalance over the sparse layers under
// the old and the new placement, and the new placement.
struct RepackRecord {
  double imbalance_before = 0, imbalance_after = 0;
  PlacementMap placement;
};

// "event": "epoch", after each epoch's validation.
struct EpochLine {
  uint64_t seed = 0;
  int epoch = 0;
  int64_t global_step = 0;  // after the epoch
  int workers = 1;
  bool warmup = false;  // "phase": "warmup" or "shuffled"
  double train_loss = 0, task_loss = 0, router_loss = 0, samples_per_s = 0;
  int64_t dropped_rows = 0;
  double expert_imbalance = 1;
  std::optional<RepackRecord> repacked;
  PhaseMsRecord step_ms;
  ScoreRecord validation;
  int best_epoch = 0;
};

// "event": "test", after the test evaluation of the best parameters.
struct TestLine {
  uint64_t seed = 0;
  int workers = 1;
  int best_epoch = 0;
  ScoreRecord validation, test;
  double temperature = 1;
  int epochs_run = 0;
  bool early_stopped = false;
  double test_ece = kNoScore;
};

// "event": "resume", when a run continues from a checkpoint.
struct ResumeLine {
  uint64_t seed = 0;
  std::string from;
  int64_t global_step = 0;
  int epoch = 0;
  int64_t step = 0;
  int saved_workers = 1;
  int workers = 1;
};

nlohmann::json ScoreRecordJson(const ScoreRecord& score);
nlohmann::json ToJson(const EpochLine& line);
nlohmann::json ToJson(const TestLine& line);
nlohmann::json ToJson(const ResumeLine& line);

// The record as its type, or nothing when it is another event. Fields a record lacks (a run
// written by an older flexmoe) keep their defaults; a field of the wrong type is kDataLoss.
std::optional<EpochLine> EpochLineFrom(const nlohmann::json& record);
std::optional<TestLine> TestLineFrom(const nlohmann::json& record);

}  // namespace flexmoe
