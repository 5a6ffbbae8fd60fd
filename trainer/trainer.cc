// The training loop, evaluation, metrics log and best-parameter checkpoint (trainer.h).
#include "trainer/trainer.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>

#include "cluster/base/error.h"
#include "data_loader/combinations.h"
#include "data_loader/epoch_plan.h"
#include "trainer/adam.h"
#include "trainer/checkpoint.h"
#include "trainer/model.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

BatchTensors ToTensors(const DecodedBatch& batch, const std::vector<int>& feature_sizes) {
  BatchTensors t;
  const int64_t b = batch.size;
  const int64_t m_count = static_cast<int64_t>(feature_sizes.size());
  for (int64_t m = 0; m < m_count; ++m) {
    at::Tensor f = at::empty({b, feature_sizes[m]}, at::kFloat);
    std::memcpy(f.data_ptr<float>(), batch.features[m].data(),
                batch.features[m].size() * sizeof(float));
    t.features.push_back(f);
  }
  t.observed = at::empty({b, m_count}, at::kBool);
  std::memcpy(t.observed.data_ptr<bool>(), batch.observed.data(), batch.observed.size());
  t.combination = at::empty({b}, at::kLong);
  std::memcpy(t.combination.data_ptr<int64_t>(), batch.combination.data(), b * sizeof(int64_t));
  t.label = at::empty({b}, at::kLong);
  std::memcpy(t.label.data_ptr<int64_t>(), batch.label.data(), b * sizeof(int64_t));
  return t;
}

at::Tensor TaskLoss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights) {
  return at::nll_loss(at::log_softmax(logits, -1), labels, weights);
}

std::string FormatDuration(double seconds) {
  int s = static_cast<int>(std::lround(std::max(0.0, seconds)));
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%02d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return buffer;
}

}  // namespace

EvalResult Evaluate(FlexMoeModelImpl& model, const DecodedDataset& data,
                    const std::vector<uint32_t>& samples, int num_classes, int num_combinations,
                    const at::Tensor& class_weights) {
  torch::NoGradGuard no_grad;
  EvalResult result;
  result.routed_to_own_expert.assign(num_combinations, 0);
  result.tokens.assign(num_combinations, 0);
  std::vector<int> labels, groups;
  std::vector<float> probs;
  double loss_sum = 0;
  StepKey key;  // unused in evaluation: no dropout, no noise
  for (const auto& chunk : Batches(samples, 256)) {
    DecodedBatch batch = data.Gather(chunk);
    BatchTensors t = ToTensors(batch, data.feature_sizes());
    ModelOutput out = model.Forward(t, key, /*training=*/false);
    loss_sum += TaskLoss(out.logits, t.label, class_weights).item<double>() * batch.size;
    at::Tensor p = at::softmax(out.logits, -1).contiguous();
    probs.insert(probs.end(), p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
    for (int i = 0; i < batch.size; ++i) {
      labels.push_back(static_cast<int>(batch.label[i]));
      groups.push_back(static_cast<int>(batch.combination[i]));
    }
    if (!out.routing.empty()) {
      // Tokens in (block, sample, patch) order; top-1 is the first column.
      const int64_t m_count = model.num_modalities();
      at::Tensor top = out.routing[0].select(1, 0).reshape({m_count, batch.size, -1});
      for (int i = 0; i < batch.size; ++i) {
        int64_t c = batch.combination[i];
        at::Tensor own = top.select(1, i).eq(c);
        result.routed_to_own_expert[c] += own.sum().item<int64_t>();
        result.tokens[c] += own.numel();
      }
    }
  }
  result.loss = samples.empty() ? 0 : loss_sum / samples.size();
  result.metrics = ComputeGroupedMetrics(labels, probs, num_classes, groups, num_combinations);
  return result;
}

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

void AppendJsonLine(const std::string& path, const nlohmann::json& line) {
  if (path.empty()) return;
  std::ofstream out(path, std::ios::app);
  out << line.dump() << "\n";
  if (!out) Fail(ErrorCode::kInternal, path, ": cannot append metrics");
}

}  // namespace

std::vector<std::string> CombinationNames(const PreparedDataset& prepared) {
  const auto& names = prepared.meta.summary().combination_names();
  return std::vector<std::string>(names.begin(), names.end());
}

TrainResult Train(const config::Config& config, const PreparedDataset& prepared,
                  const DecodedDataset& data, uint64_t seed, const TrainOptions& options) {
  const auto& tc = config.training();
  const int m_count = data.num_modalities();
  if (m_count != config.data().modalities_size()) {
    Fail(ErrorCode::kInvalidArgument, prepared.dir, ": prepared with ", m_count,
         " modalities, the config names ", config.data().modalities_size(),
         "; prepare the dataset again");
  }
  if (options.threads > 0) at::set_num_threads(options.threads);
  const int num_classes = prepared.meta.num_classes();
  Combinations combinations(m_count);
  const int c_count = combinations.size();

  torch::manual_seed(seed);
  ModelShape shape{data.feature_sizes(), num_classes};
  FlexMoeModel model(config.model(), shape, static_cast<int64_t>(seed));
  FusedAdam optimizer(model->parameters(), AdamOptions{tc.lr()});
  at::Tensor class_weights;
  if (tc.class_weights_size() > 0) {
    std::vector<float> w(tc.class_weights().begin(), tc.class_weights().end());
    class_weights = at::tensor(w, at::kFloat);
  }

  std::vector<uint32_t> train = SamplesOfSplit(prepared.index, 0);
  std::vector<uint32_t> validation = SamplesOfSplit(prepared.index, 1);
  std::vector<uint32_t> test = SamplesOfSplit(prepared.index, 2);
  if (train.empty()) Fail(ErrorCode::kInvalidArgument, prepared.dir, ": no training samples");
  std::vector<int> modality_count(prepared.size());
  for (size_t i = 0; i < prepared.size(); ++i) {
    modality_count[i] = combinations.Size(static_cast<int>(prepared.index.combination(i)));
  }

  TrainResult result;
  result.seed = seed;
  std::string metrics_path;
  if (!options.run_dir.empty()) {
    std::filesystem::create_directories(options.run_dir);
    metrics_path = options.run_dir + "/metrics.jsonl";
  }
  std::vector<at::Tensor> best_parameters;
  double best_accuracy = -1;
  const int steps_per_epoch =
      static_cast<int>((train.size() + tc.batch_size() - 1) / tc.batch_size());
  const int total_steps = steps_per_epoch * tc.epochs();
  int64_t global_step = 0;
  auto start = Clock::now();
  for (int epoch = 0; epoch < tc.epochs(); ++epoch) {
    model->train();
    EpochPhase phase = epoch < tc.warmup_epochs() ? EpochPhase::kWarmup : EpochPhase::kShuffled;
    auto batches = Batches(EpochOrder(train, modality_count, seed, epoch, phase), tc.batch_size());
    EpochRecord record;
    record.epoch = epoch;
    auto epoch_start = Clock::now();
    int64_t epoch_samples = 0;
    for (size_t s = 0; s < batches.size(); ++s, ++global_step) {
      DecodedBatch batch = data.Gather(batches[s]);
      BatchTensors t = ToTensors(batch, data.feature_sizes());
      StepKey key{seed, epoch, global_step, batch.sample};
      ModelOutput out = model->Forward(t, key, /*training=*/true);
      at::Tensor task = TaskLoss(out.logits, t.label, class_weights);
      at::Tensor loss = task + tc.gate_loss_weight() * out.aux_loss;
      optimizer.ZeroGrad();
      loss.backward();
      optimizer.Step();
      double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        Fail(ErrorCode::kFailedPrecondition, "epoch ", epoch, " step ", s,
             ": the loss is not finite (", loss_value, "); lower training.lr");
      }
      result.step_losses.push_back(loss_value);
      record.train_loss += loss_value;
      record.task_loss += task.item<double>();
      record.router_loss += out.aux_loss.item<double>();
      epoch_samples += batch.size;
      bool last = s + 1 == batches.size();
      int every = config.metrics().log_every_steps();
      if (options.log != nullptr && every > 0 && ((s + 1) % every == 0 || last)) {
        double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        double rate =
            epoch_samples / std::chrono::duration<double>(Clock::now() - epoch_start).count();
        double left = elapsed / (global_step + 1) * (total_steps - global_step - 1);
        *options.log << "epoch " << epoch + 1 << "/" << tc.epochs() << " step " << s + 1 << "/"
                     << batches.size() << " loss " << std::fixed << std::setprecision(4)
                     << loss_value << " " << std::setprecision(1) << rate << " samples/s, "
                     << FormatDuration(left) << " left\n"
                     << std::defaultfloat << std::flush;
      }
    }
    double seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    record.samples_per_s = epoch_samples / seconds;
    record.train_loss /= batches.size();
    record.task_loss /= batches.size();
    record.router_loss /= batches.size();
    model->eval();
    record.validation = Evaluate(*model, data, validation, num_classes, c_count, class_weights);
    const auto& v = record.validation.metrics.overall;
    if (options.log != nullptr) {
      *options.log << "epoch " << epoch + 1 << " done: train loss " << std::setprecision(4)
                   << record.train_loss << " (task " << record.task_loss << ", router "
                   << record.router_loss << "), validation acc " << v.accuracy << " f1 "
                   << v.macro_f1 << " auc " << v.auc << ", " << std::setprecision(1) << std::fixed
                   << record.samples_per_s << " samples/s\n"
                   << std::defaultfloat << std::setprecision(6);
    }
    AppendJsonLine(metrics_path, {{"event", "epoch"},
                                  {"seed", seed},
                                  {"epoch", epoch},
                                  {"phase", phase == EpochPhase::kWarmup ? "warmup" : "shuffled"},
                                  {"train_loss", record.train_loss},
                                  {"task_loss", record.task_loss},
                                  {"router_loss", record.router_loss},
                                  {"samples_per_s", record.samples_per_s},
                                  {"validation", MetricsJson(v)}});
    if (v.accuracy > best_accuracy) {  // strictly higher, as the authors' code
      best_accuracy = v.accuracy;
      result.best_epoch = epoch;
      best_parameters.clear();
      for (const auto& p : model->parameters()) best_parameters.push_back(p.detach().clone());
    }
    result.epochs.push_back(std::move(record));
  }

  {
    torch::NoGradGuard no_grad;
    auto parameters = model->parameters();
    for (size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(best_parameters[i]);
  }
  model->eval();
  result.best_validation = result.epochs[result.best_epoch].validation;
  result.test = Evaluate(*model, data, test, num_classes, c_count, class_weights);
  const auto& t = result.test.metrics.overall;
  AppendJsonLine(metrics_path, {{"event", "test"},
                                {"seed", seed},
                                {"best_epoch", result.best_epoch},
                                {"validation", MetricsJson(result.best_validation.metrics.overall)},
                                {"test", MetricsJson(t)}});
  if (!options.run_dir.empty()) {
    CheckpointInfo info;
    info.epoch = result.best_epoch;
    info.step = static_cast<int64_t>(steps_per_epoch) * (result.best_epoch + 1);
    info.seed = seed;
    info.config_text = config.DebugString();
    info.validation_accuracy = result.best_validation.metrics.overall.accuracy;
    result.checkpoint_dir = options.run_dir + "/checkpoint";
    SaveCheckpoint(*model, info, result.checkpoint_dir);
  }
  if (options.log != nullptr) {
    *options.log << "\nseed " << seed << ": best validation accuracy "
                 << result.best_validation.metrics.overall.accuracy << " at epoch "
                 << result.best_epoch + 1 << "; test split, per modality combination:\n"
                 << FormatGroupTable(result.test.metrics, CombinationNames(prepared));
  }
  return result;
}

}  // namespace flexmoe
