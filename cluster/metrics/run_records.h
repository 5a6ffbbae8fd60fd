// The run records of metrics.jsonl (docs/metrics.md) as typed values, each with one
// to-JSON and one from-JSON: the trainer writes them (trainer/train/train_log.cc), and the
// TensorBoard scalars (metrics_writer.cc), the report's curves (inference/report.cc) and
// tune's scores (tune/tuner.cc) read them. Each worker's part of a logged step
// (WorkerStepLine) is merged into the job's step line (StepLine) by step_records.h.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cluster/base/expert_placement.h"

namespace flexmoe {

inline constexpr double kNoScore = std::numeric_limits<double>::quiet_NaN();

// A split's overall scores; NaN (JSON null) where a score is undefined (one class only).
struct ScoreRecord {
  int64_t n = 0;
  double acc = kNoScore, f1 = kNoScore, auc = kNoScore;
  double log_loss = kNoScore, brier = kNoScore;  // unweighted, of the prior-corrected probabilities
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
  // Bytes of tokens and their gradients worker 0 sent to other workers a step (0 with one).
  int64_t exchange_bytes = 0;
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

// "event": "restart", when the launcher starts a job again after a member died.
struct RestartLine {
  uint64_t seed = 0;
  int attempt = 0;     // 1 for the first restart
  std::string reason;  // what ended the attempt before
  int workers = 1;     // this attempt's
  std::string from;    // the checkpoint it continues from; "" from the start
  int64_t global_step = 0;
};

// Tokens routed per sparse layer to (expert e, combination c), at e * combinations + c.
struct TokenCounts {
  std::vector<int> layers;  // fusion-layer index of each sparse layer
  int64_t experts = 0, combinations = 0;
  std::vector<std::vector<int64_t>> counts;  // [layer][e * combinations + c]
};

// The fields a worker's part and the job's step line share: worker 0's position and the
// step's global losses.
struct StepPosition {
  uint64_t seed = 0;
  int epoch = 0;
  int64_t step = 0, global_step = 0;
  int workers = 1;
  double loss = 0, task_loss = 0, router_loss = 0;
};

// "event": "step" from one worker: its window since the last logged step.
struct WorkerStepLine {
  StepPosition at;
  int worker = 0;
  int64_t steps = 0, samples = 0;
  double seconds = 0;  // the window's wall time (steps and waiting for data)
  PhaseMsRecord step_ms;
  TokenCounts tokens;  // empty when the model counts none
};

// The spread of the workers' step times in a logged window (each worker's mean step over
// all phases, ms): quantiles, and counts in kSpreadBins equal bins from min to max.
struct WorkerSpread {
  static constexpr int kSpreadBins = 20;
  double min = 0, p50 = 0, p90 = 0, max = 0;
  std::vector<int64_t> bins;
};

// A worker's mean step per phase.
struct WorkerPhases {
  int worker = 0;
  PhaseMsRecord step_ms;
};

// "event": "step" as metrics.jsonl has it: samples and tokens summed over the workers,
// samples_per_s over the slowest worker's window, step_ms the slowest worker's per phase;
// the spread of the workers' steps, the slowest workers and the straggler (the slowest,
// when its step is more than 1.2 times the median); and worker_step_ms every worker's, in
// jobs of at most metrics.per_worker_limit workers (empty above).
struct StepLine {
  StepPosition at;
  int64_t steps = 0, samples = 0;
  double samples_per_s = 0;
  PhaseMsRecord step_ms;
  std::vector<PhaseMsRecord> worker_step_ms;
  WorkerSpread worker_total_ms;
  std::vector<WorkerPhases> slowest;  // slowest first, at most kSlowestWorkers
  int straggler = -1;                 // -1: none
  TokenCounts tokens;
};

inline constexpr int kSlowestWorkers = 5;

// Sets line's spread, slowest workers and straggler from every worker's step (rank order).
void SummarizeWorkers(const std::vector<PhaseMsRecord>& workers, StepLine* line);

// RUN/ensemble.json: the seeds of a run as one predictor (mean probabilities), on the
// validation and test splits, without and with each member's calibration, and the test
// split per modality combination.
struct EnsembleRecord {
  std::vector<uint64_t> seeds;
  ScoreRecord validation, test, validation_calibrated, test_calibrated;
  std::map<std::string, ScoreRecord> test_per_combination;
  // training.cross_fit: the validation scores are out of fold (each training and validation
  // sample scored by the one member that validated on it), not the members' mean.
  bool cross_fit = false;
};

nlohmann::json ScoreRecordJson(const ScoreRecord& score);
nlohmann::json ToJson(const EnsembleRecord& record);
// kDataLoss naming `source` when it is not an ensemble record.
EnsembleRecord EnsembleRecordFrom(const nlohmann::json& record, const std::string& source);
nlohmann::json ToJson(const WorkerStepLine& line);
nlohmann::json ToJson(const StepLine& line);
nlohmann::json ToJson(const EpochLine& line);
nlohmann::json ToJson(const TestLine& line);
nlohmann::json ToJson(const ResumeLine& line);
nlohmann::json ToJson(const RestartLine& line);

// The record as its type, or nothing when it is another event. Fields a record lacks (a run
// written by an older flexmoe) keep their defaults; a field of the wrong type is kDataLoss.
std::optional<EpochLine> EpochLineFrom(const nlohmann::json& record);
std::optional<TestLine> TestLineFrom(const nlohmann::json& record);
std::optional<StepLine> StepLineFrom(const nlohmann::json& record);
std::optional<ResumeLine> ResumeLineFrom(const nlohmann::json& record);
std::optional<RestartLine> RestartLineFrom(const nlohmann::json& record);
// A worker's step record as it arrives at the coordinator: kInvalidArgument naming the
// worker when it is not one.
WorkerStepLine WorkerStepLineFrom(const nlohmann::json& record, int rank);

}  // namespace flexmoe
