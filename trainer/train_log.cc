// The metrics log and the progress lines (train_log.h).
#include "trainer/train_log.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

nlohmann::json MetricsJson(const ClassificationMetrics& m) {
  auto number = [](double v) {
    return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
  };
  return {{"n", m.count},
          {"acc", number(m.accuracy)},
          {"f1", number(m.macro_f1)},
          {"auc", number(m.auc)}};
}

}  // namespace

std::string FormatDuration(double seconds) {
  int s = static_cast<int>(std::lround(std::max(0.0, seconds)));
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%02d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return buffer;
}

MetricsLog::MetricsLog(std::string path, uint64_t seed, int workers, int log_every_steps)
    : path_(std::move(path)), seed_(seed), workers_(workers), every_(log_every_steps) {}

int64_t MetricsLog::bytes() const {
  std::error_code ec;
  if (path_.empty() || !std::filesystem::exists(path_, ec)) return 0;
  return static_cast<int64_t>(std::filesystem::file_size(path_, ec));
}

void MetricsLog::ContinueAt(int64_t bytes) {
  if (path_.empty() || !std::filesystem::exists(path_)) return;
  const int64_t now = this->bytes();
  if (now < bytes) {
    Fail(ErrorCode::kDataLoss, path_, ": ", now, " bytes, but the checkpoint was taken at ", bytes,
         " (the metrics log was cut short)");
  }
  std::filesystem::resize_file(path_, static_cast<uintmax_t>(bytes));
}

void MetricsLog::Append(const nlohmann::json& line) const {
  if (path_.empty()) return;
  std::ofstream out(path_, std::ios::app);
  out << line.dump() << "\n";
  if (!out) Fail(ErrorCode::kInternal, path_, ": cannot append metrics");
}

void MetricsLog::AfterStep(const StepReport& r) {
  if (every_ <= 0) return;
  const bool last = r.position.step_in_epoch == r.steps_in_epoch;
  if (r.position.step_in_epoch % every_ != 0 && !last) return;
  Append({{"event", "step"},
          {"seed", seed_},
          {"epoch", r.position.epoch},
          {"step", r.position.step_in_epoch - 1},
          {"global_step", r.position.global_step - 1},
          {"workers", workers_},
          {"loss", r.loss},
          {"task_loss", r.task_loss},
          {"router_loss", r.router_loss}});
}

void MetricsLog::AfterEpoch(const EpochRecord& record, const TrainState& state) {
  Append(
      {{"event", "epoch"},
       {"seed", seed_},
       {"epoch", record.epoch},
       {"workers", workers_},
       {"phase", record.warmup ? "warmup" : "shuffled"},
       {"train_loss", record.train_loss},
       {"task_loss", record.task_loss},
       {"router_loss", record.router_loss},
       {"samples_per_s", record.samples_per_s},
       {"dropped_rows", record.dropped_rows},
       {"expert_imbalance", record.expert_imbalance},
       {"repacked", record.repacked ? nlohmann::json{{"imbalance_before", record.imbalance_before},
                                                     {"imbalance_after", record.imbalance_after}}
                                    : nlohmann::json(nullptr)},
       {"step_ms",
        {{"compute", 1e3 * record.compute_s},
         {"exchange", 1e3 * record.exchange_s},
         {"reduce", 1e3 * record.reduce_s},
         {"data", 1e3 * record.data_s}}},
       {"validation", MetricsJson(record.validation.metrics.overall)},
       {"best_epoch", state.progress.best.epoch}});
}

void MetricsLog::AfterTraining(const TrainResult& result) {
  Append({{"event", "test"},
          {"seed", seed_},
          {"workers", workers_},
          {"best_epoch", result.best_epoch},
          {"validation", MetricsJson(result.best_validation.metrics.overall)},
          {"test", MetricsJson(result.test.metrics.overall)}});
}

void MetricsLog::Resumed(const std::string& dir, const TrainManifest& manifest) {
  Append({{"event", "resume"},
          {"seed", seed_},
          {"from", dir},
          {"global_step", manifest.step()},
          {"epoch", manifest.progress.position.epoch},
          {"step", manifest.progress.position.step_in_epoch},
          {"saved_workers", manifest.world_size},
          {"workers", workers_}});
}

TensorBoardLog::TensorBoardLog(const std::string& dir, int log_every_steps)
    : writer_(dir), every_(log_every_steps) {}

void TensorBoardLog::AfterStep(const StepReport& r) {
  if (every_ <= 0 || r.position.step_in_epoch % every_ != 0) return;
  const int64_t step = r.position.global_step;
  writer_.Scalar("step/loss", step, r.loss);
  writer_.Scalar("step/task_loss", step, r.task_loss);
  writer_.Scalar("step/router_loss", step, r.router_loss);
}

void TensorBoardLog::AfterEpoch(const EpochRecord& record, const TrainState& state) {
  const int64_t step = state.progress.position.global_step;
  const auto& val = record.validation.metrics.overall;
  writer_.Scalar("epoch/train_loss", step, record.train_loss);
  writer_.Scalar("epoch/task_loss", step, record.task_loss);
  writer_.Scalar("epoch/router_loss", step, record.router_loss);
  writer_.Scalar("validation/accuracy", step, val.accuracy);
  writer_.Scalar("validation/macro_f1", step, val.macro_f1);
  writer_.Scalar("validation/auc", step, val.auc);
  writer_.Scalar("throughput/samples_per_s", step, record.samples_per_s);
  writer_.Scalar("experts/imbalance", step, record.expert_imbalance);
  writer_.Flush();
}

void TensorBoardLog::AfterTraining(const TrainResult& result) {
  const auto& test = result.test.metrics.overall;
  writer_.Scalar("test/accuracy", result.best_epoch, test.accuracy);
  writer_.Scalar("test/macro_f1", result.best_epoch, test.macro_f1);
  writer_.Scalar("test/auc", result.best_epoch, test.auc);
  writer_.Flush();
}

ProgressLog::ProgressLog(std::ostream* log, int log_every_steps, int workers)
    : log_(log), every_(log_every_steps), workers_(workers) {}

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
  *log_ << "epoch " << r.position.epoch + 1 << "/" << r.epochs << " step "
        << r.position.step_in_epoch << "/" << r.steps_in_epoch << " loss " << std::fixed
        << std::setprecision(4) << r.loss << " " << std::setprecision(1)
        << epoch_samples_ * workers_ / epoch_s << " samples/s, " << FormatDuration(left)
        << " left\n"
        << std::defaultfloat << std::flush;
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
        << " ms, data " << 1e3 * record.data_s << " ms\n"
        << std::defaultfloat << std::setprecision(6);
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
