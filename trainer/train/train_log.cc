// The metrics log and the progress lines (train_log.h).
#include "trainer/train/train_log.h"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "cluster/base/error.h"
#include "cluster/comm/gather_bytes.h"
#include "cluster/metrics/run_records.h"
#include "cluster/metrics/step_records.h"

namespace flexmoe {
ScoreRecord ScoreOf(const ClassificationMetrics& m) {
  return {m.count, m.accuracy, m.macro_f1, m.auc, m.log_loss, m.brier};
}

std::string FormatDuration(double seconds) {
  int s = static_cast<int>(std::lround(std::max(0.0, seconds)));
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%02d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return buffer;
}

MetricsLog::MetricsLog(MetricsSink* sink, int rank, uint64_t seed, int workers, int log_every_steps,
                       Shape shape)
    : sink_(sink),
      rank_(rank),
      seed_(seed),
      workers_(workers),
      every_(log_every_steps),
      shape_(std::move(shape)) {}

void MetricsLog::AfterStep(const StepReport& r) {
  if (every_ <= 0 || r.totals == nullptr) return;
  const bool last = r.position.step_in_epoch == r.steps_in_epoch;
  if (r.position.step_in_epoch % every_ != 0 && !last) return;
  const StepTotals& now = *r.totals;
  const int64_t steps = now.steps - last_.steps;
  const double per_step = steps > 0 ? 1e3 / steps : 0;
  const double exchange = now.exchange_s - last_.exchange_s, reduce = now.reduce_s - last_.reduce_s;
  WorkerStepLine line;
  line.at = {seed_,
             r.position.epoch,
             r.position.step_in_epoch - 1,
             r.position.global_step - 1,
             workers_,
             r.loss,
             r.task_loss,
             r.router_loss};
  line.worker = rank_;
  line.steps = steps;
  line.samples = now.samples - last_.samples;
  line.seconds = (now.step_s - last_.step_s) + (now.data_s - last_.data_s);
  line.step_ms = {per_step * ((now.step_s - last_.step_s) - exchange - reduce), per_step * exchange,
                  per_step * reduce, per_step * (now.data_s - last_.data_s)};
  for (size_t l = 0; l < now.tokens.size(); ++l) {
    std::vector<int64_t> window = now.tokens[l];
    if (l < last_.tokens.size()) {
      for (size_t i = 0; i < window.size(); ++i) window[i] -= last_.tokens[l][i];
    }
    line.tokens.counts.push_back(std::move(window));
  }
  line.tokens.layers = shape_.sparse_layers;
  line.tokens.experts = shape_.experts;
  line.tokens.combinations = shape_.combinations;
  const nlohmann::json record = ToJson(line);
  last_ = now;
  sink_->WorkerStep(rank_, record);
}

void MetricsLog::AfterEpoch(const EpochRecord& record, const TrainState& state) {
  if (rank_ != 0) return;
  EpochLine line;
  line.seed = seed_;
  line.epoch = record.epoch;
  line.global_step = state.progress.position.global_step;
  line.workers = workers_;
  line.warmup = record.warmup;
  line.train_loss = record.train_loss;
  line.task_loss = record.task_loss;
  line.router_loss = record.router_loss;
  line.samples_per_s = record.samples_per_s;
  line.dropped_rows = record.dropped_rows;
  line.expert_imbalance = record.expert_imbalance;
  if (record.repacked) {
    line.repacked =
        RepackRecord{record.imbalance_before, record.imbalance_after, record.repacked_placement};
  }
  line.step_ms = {1e3 * record.compute_s, 1e3 * record.exchange_s, 1e3 * record.reduce_s,
                  1e3 * record.data_s};
  line.exchange_bytes = record.exchange_bytes;
  line.validation = ScoreOf(record.validation.metrics.overall);
  line.best_epoch = state.progress.best.epoch;
  sink_->RunRecord(ToJson(line));
}

void MetricsLog::AfterTraining(const TrainResult& result) {
  if (rank_ != 0) return;
  TestLine line;
  line.seed = seed_;
  line.workers = workers_;
  line.best_epoch = result.best_epoch;
  line.validation = ScoreOf(result.best_validation.metrics.overall);
  line.test = ScoreOf(result.test.metrics.overall);
  line.temperature = result.calibration.temperature;
  line.epochs_run = result.epochs_run;
  line.early_stopped = result.early_stopped;
  line.test_ece = result.test.ece;
  sink_->RunRecord(ToJson(line));
}

void MetricsLog::Resumed(const std::string& dir, const TrainManifest& manifest) {
  if (rank_ != 0) return;
  ResumeLine line;
  line.seed = seed_;
  line.from = dir;
  line.global_step = manifest.step();
  line.epoch = manifest.progress.position.epoch;
  line.step = manifest.progress.position.step_in_epoch;
  line.saved_workers = manifest.world_size;
  line.workers = workers_;
  sink_->RunRecord(ToJson(line));
}

LocalMetricsSink::LocalMetricsSink(Communicator* world, bool tensorboard, int per_worker_limit)
    : world_(world), tensorboard_(tensorboard), per_worker_limit_(per_worker_limit) {}
LocalMetricsSink::~LocalMetricsSink() = default;

void LocalMetricsSink::Open(const std::string& run_dir) {
  writer_ = std::make_unique<MetricsWriter>(run_dir, tensorboard_);
}

void LocalMetricsSink::WorkerStep(int rank, const nlohmann::json& record) {
  std::vector<nlohmann::json> parts;
  if (world_ != nullptr && world_->size() > 1) {
    for (const std::string& bytes : GatherBytes(*world_, record.dump(), 0)) {
      parts.push_back(nlohmann::json::parse(bytes));
    }
  } else {
    parts.push_back(record);
  }
  if (rank == 0 && writer_ != nullptr) writer_->Write(MergeStepRecords(parts, per_worker_limit_));
}

void LocalMetricsSink::RunRecord(const nlohmann::json& record) {
  if (writer_ != nullptr) writer_->Write(record);
}

int64_t LocalMetricsSink::lines() const { return writer_ != nullptr ? writer_->lines() : 0; }

void LocalMetricsSink::ContinueAt(int64_t lines) {
  if (writer_ != nullptr) writer_->ContinueAt(lines);
}

ProgressLog::ProgressLog(std::ostream* log, int log_every_steps, int workers, RedrawStream* redraw)
    : log_(log), redraw_(redraw), every_(log_every_steps), workers_(workers) {}

void ProgressLog::AfterStep(const StepReport& r) {
  ++steps_;
  epoch_samples_ += r.samples;
  if (log_ == nullptr || every_ <= 0) return;
  const bool last = r.position.step_in_epoch == r.steps_in_epoch;
  if (r.position.step_in_epoch % every_ != 0 && !last) return;
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double epoch_s = std::chrono::duration<double>(now - epoch_start_).count();
  const int64_t total = r.steps_in_epoch * r.epochs;
  const double left = elapsed / steps_ * static_cast<double>(total - r.position.global_step);
  std::ostringstream line;
  line << "epoch " << r.position.epoch + 1 << "/" << r.epochs << " step "
       << r.position.step_in_epoch << "/" << r.steps_in_epoch << " loss " << std::fixed
       << std::setprecision(4) << r.loss << " " << std::setprecision(1)
       << epoch_samples_ * workers_ / epoch_s << " samples/s, " << FormatDuration(left) << " left";
  if (redraw_ != nullptr) {
    redraw_->Redraw(line.str());
  } else {
    *log_ << line.str() << "\n" << std::flush;
  }
}

void ProgressLog::AfterEpoch(const EpochRecord& record, const TrainState&) {
  epoch_start_ = Clock::now();
  epoch_samples_ = 0;
  if (log_ == nullptr) return;
  const auto& val = record.validation.metrics.overall;
  *log_ << "epoch " << record.epoch + 1 << " done: train loss " << std::setprecision(4)
        << record.train_loss << " (task " << record.task_loss << ", router " << record.router_loss
        << "), validation acc " << val.accuracy << " f1 " << val.macro_f1 << " auc " << val.auc
        << ", " << std::setprecision(1) << std::fixed << record.samples_per_s
        << " samples/s; per step: compute " << std::setprecision(2) << 1e3 * record.compute_s
        << " ms, exchange " << 1e3 * record.exchange_s << " ms, reduce " << 1e3 * record.reduce_s
        << " ms, data " << 1e3 * record.data_s << " ms";
  if (record.exchange_bytes > 0)
    *log_ << ", " << record.exchange_bytes / 1024 << " KiB of tokens sent";
  *log_ << "\n" << std::defaultfloat << std::setprecision(6);
}

void ProgressLog::Resumed(const std::string& dir, const TrainManifest& manifest) {
  if (log_ == nullptr) return;
  const TrainPosition& p = manifest.progress.position;
  *log_ << "resuming from " << dir << ": global step " << p.global_step << " (epoch " << p.epoch + 1
        << ", step " << p.step_in_epoch << "), written by " << manifest.world_size << " worker"
        << (manifest.world_size == 1 ? "" : "s") << "\n"
        << std::flush;
}

}  // namespace flexmoe
