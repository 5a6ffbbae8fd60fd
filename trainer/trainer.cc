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

#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"
#include "data_loader/combinations.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/loader_client.h"
#include "data_loader/plan_batch_source.h"
#include "trainer/adam.h"
#include "trainer/checkpoint.h"
#include "trainer/compute_threads.h"
#include "trainer/grad_sync.h"
#include "trainer/model.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

std::string FormatDuration(double seconds) {
  int s = static_cast<int>(std::lround(std::max(0.0, seconds)));
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%02d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return buffer;
}

// Worker `rank`'s contiguous slice of a global batch of n samples: [n*rank/W, n*(rank+1)/W).
std::vector<uint32_t> SliceOf(const std::vector<uint32_t>& batch, int rank, int world_size) {
  size_t n = batch.size();
  return std::vector<uint32_t>(batch.begin() + n * rank / world_size,
                               batch.begin() + n * (rank + 1) / world_size);
}

// Every worker's rows [N_r, C] (double), concatenated in rank order, on every worker.
at::Tensor GatherRows(const at::Tensor& rows, Communicator* world) {
  if (world == nullptr || world->size() == 1) return rows;
  const int w = world->size();
  at::Tensor counts = world->AllGather(at::tensor({rows.size(0)}, at::kLong)).reshape({-1});
  std::vector<int64_t> recv(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + w);
  std::vector<int64_t> send(w, rows.size(0));
  std::vector<at::Tensor> copies(w, rows);
  return world->AllToAll(at::cat(copies, 0), send, recv);
}

}  // namespace

EvalResult Evaluate(FlexMoeModelImpl& model, const DecodedDataset& data,
                    const std::vector<uint32_t>& samples, int num_classes, int num_combinations,
                    const at::Tensor& class_weights, Communicator* world) {
  torch::NoGradGuard no_grad;
  const int w = world != nullptr ? world->size() : 1;
  const int rank = world != nullptr ? world->rank() : 0;
  const int64_t m_count = model.num_modalities();
  std::vector<at::Tensor> rows;  // per batch: [n, K probs | label | combination | nll]
  at::Tensor routed = at::zeros({2, num_combinations}, at::kLong);
  StepKey key;  // unused in evaluation: no dropout, no noise
  // Every worker runs the same number of batches (its slice may be empty).
  for (const auto& global : Batches(samples, 256 * w)) {
    DecodedBatch batch = data.Gather(SliceOf(global, rank, w));
    BatchTensors t = ToTensors(batch, data.feature_sizes());
    ModelOutput out = model.Forward(t, key, /*training=*/false);
    at::Tensor logp = at::log_softmax(out.logits, -1);
    at::Tensor nll = at::nll_loss(logp, t.label, class_weights, at::Reduction::None);
    at::Tensor weight =
        class_weights.defined() ? class_weights.index_select(0, t.label) : at::ones({batch.size});
    rows.push_back(at::cat({logp.exp().to(at::kDouble), t.label.unsqueeze(1).to(at::kDouble),
                            t.combination.unsqueeze(1).to(at::kDouble),
                            nll.unsqueeze(1).to(at::kDouble), weight.unsqueeze(1).to(at::kDouble)},
                           1));
    if (!out.routing.empty() && batch.size > 0) {
      // Tokens in (block, sample, patch) order; top-1 is the first column.
      at::Tensor top = out.routing[0].select(1, 0).reshape({m_count, batch.size, -1});
      at::Tensor own = top.eq(t.combination.view({1, -1, 1}));  // [M, B, P]
      at::Tensor per_sample = own.sum(at::IntArrayRef{0, 2});
      routed[0].index_add_(0, t.combination, per_sample);
      routed[1].index_add_(0, t.combination,
                           at::full({batch.size}, own.size(0) * own.size(2), at::kLong));
    }
  }
  at::Tensor all =
      GatherRows(rows.empty() ? at::empty({0, num_classes + 4}, at::kDouble) : at::cat(rows, 0),
                 world)
          .contiguous();
  if (world != nullptr && w > 1) world->AllReduce(routed, ReduceOp::kSum);
  EvalResult result;
  std::vector<int> labels, groups;
  std::vector<float> probs;
  double loss_sum = 0, weight_sum = 0;
  const double* r = all.data_ptr<double>();
  const int64_t cols = num_classes + 4;
  for (int64_t i = 0; i < all.size(0); ++i, r += cols) {
    for (int k = 0; k < num_classes; ++k) probs.push_back(static_cast<float>(r[k]));
    labels.push_back(static_cast<int>(r[num_classes]));
    groups.push_back(static_cast<int>(r[num_classes + 1]));
    loss_sum += r[num_classes + 2];
    weight_sum += r[num_classes + 3];
  }
  result.loss = weight_sum > 0 ? loss_sum / weight_sum : 0;
  result.metrics = ComputeGroupedMetrics(labels, probs, num_classes, groups, num_combinations);
  result.routed_to_own_expert.assign(routed[0].data_ptr<int64_t>(),
                                     routed[0].data_ptr<int64_t>() + num_combinations);
  result.tokens.assign(routed[1].data_ptr<int64_t>(),
                       routed[1].data_ptr<int64_t>() + num_combinations);
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

std::vector<std::string> CombinationNames(const PreparedDataset& prepared) {
  const auto& names = prepared.meta.summary().combination_names();
  return std::vector<std::string>(names.begin(), names.end());
}
namespace {

// Full expert tensors ([E, ...], global order) on the expert-parallel group's rank 0, from
// each owner's rows; other ranks get undefined tensors. Every rank of the group calls it.
at::Tensor GatherExperts(const at::Tensor& local, const ExpertPlacement& placement,
                         Communicator& ep) {
  const int w = ep.size();
  std::vector<int64_t> send(w, 0), recv(w, 0);
  send[0] = local.size(0);
  if (ep.rank() == 0) {
    for (int r = 0; r < w; ++r) recv[r] = static_cast<int64_t>(placement.LocalExperts(r).size());
  }
  at::Tensor rows = ep.AllToAll(local.detach().contiguous(), send, recv);
  if (ep.rank() != 0) return at::Tensor();
  std::vector<int64_t> position;  // received row i holds global expert position[i]
  for (int r = 0; r < w; ++r) {
    for (int64_t e : placement.LocalExperts(r)) position.push_back(e);
  }
  at::Tensor full = at::empty_like(rows);
  full.index_copy_(0, at::tensor(position, at::kLong), rows);
  return full;
}

}  // namespace

BatchSourceFactory LoaderBatchesFromConfig(const config::Config& config, uint64_t seed) {
  if (config.cluster().loader_addresses_size() == 0) return nullptr;
  return [config, seed](int rank, int world_size) -> std::unique_ptr<BatchSource> {
    LoaderClientOptions options = LoaderClientOptionsFromConfig(config, 0, rank, world_size);
    options.plan.seed = seed;
    return std::make_unique<LoaderClient>(options);
  };
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
  if (options.threads > 0) SetComputeThreads(options.threads);
  Communicator* world = options.world;
  const int w = world != nullptr ? world->size() : 1;
  const int rank = world != nullptr ? world->rank() : 0;
  const bool lead = rank == 0;
  std::ostream* log = lead ? options.log : nullptr;
  const int num_classes = prepared.meta.num_classes();
  Combinations combinations(m_count);
  const int c_count = combinations.size();

  // Process groups and the expert placement (W > 1 only; one process runs unsharded).
  ProcessGroups groups;
  ParallelLayout layout;
  const ParallelLayout* layout_ptr = nullptr;
  if (world != nullptr && w > 1) {
    groups = MakeProcessGroups(*world, options.expert_parallel_degree);
    layout.placement =
        ExpertPlacement::Balanced(config.model().num_experts(), groups.expert_parallel->size());
    layout.expert_rank = groups.expert_parallel->rank();
    layout.expert_parallel = groups.expert_parallel.get();
    layout.data_parallel = world;
    layout_ptr = &layout;
  }
  ExchangeStats exchange;
  if (layout_ptr != nullptr) layout.exchange_stats = &exchange;

  torch::manual_seed(seed);
  ModelShape shape{data.feature_sizes(),
                   num_classes,
                   {config.data().modalities().begin(), config.data().modalities().end()}};
  FlexMoeModel model(config.model(), shape, static_cast<int64_t>(seed), layout_ptr);
  std::vector<at::Tensor> replicated, experts;
  for (const auto& item : model->named_parameters()) {
    (IsExpertParameter(item.key()) ? experts : replicated).push_back(item.value());
  }
  GradientSynchronizer sync(replicated, experts, world, groups.expert_data_parallel.get());
  FusedAdam optimizer(model->parameters(), AdamOptions{tc.lr()});
  at::Tensor class_weights;
  if (tc.class_weights_size() > 0) {
    std::vector<float> cw(tc.class_weights().begin(), tc.class_weights().end());
    class_weights = at::tensor(cw, at::kFloat);
  }

  std::unique_ptr<BatchSource> source;
  if (options.training_batches) {
    source = options.training_batches(rank, w);
  } else {
    PlanOptions base;
    base.seed = seed;
    base.world_size = w;
    base.global_batch = tc.batch_size();
    base.remainder = tc.remainder();
    base.batching = tc.batching();
    base.num_modalities = m_count;
    source = std::make_unique<PlanBatchSource>(data, prepared, 0, base, tc.warmup_epochs(), rank);
  }
  std::vector<uint32_t> validation = SamplesOfSplit(prepared.index, 1);
  std::vector<uint32_t> test = SamplesOfSplit(prepared.index, 2);
  if (SamplesOfSplit(prepared.index, 0).empty()) {
    Fail(ErrorCode::kInvalidArgument, prepared.dir, ": no training samples");
  }

  TrainResult result;
  result.seed = seed;
  std::string metrics_path;
  if (lead && !options.run_dir.empty()) {
    std::filesystem::create_directories(options.run_dir);
    metrics_path = options.run_dir + "/metrics.jsonl";
  }
  std::vector<at::Tensor> best_parameters;
  double best_score = -2;
  int64_t global_step = 0, total_steps = -1, dropped_before = 0;
  auto start = Clock::now();
  for (int epoch = 0; epoch < tc.epochs(); ++epoch) {
    model->train();
    EpochPhase phase = epoch < tc.warmup_epochs() ? EpochPhase::kWarmup : EpochPhase::kShuffled;
    source->StartEpoch(epoch, 0);
    const int64_t steps = source->steps_in_epoch();
    if (total_steps < 0) total_steps = steps * tc.epochs();
    EpochRecord record;
    record.epoch = epoch;
    auto epoch_start = Clock::now();
    int64_t epoch_samples = 0;
    double data_s = 0, reduce_s = 0, step_s = 0;
    const double exchange_before = exchange.seconds;
    DecodedBatch batch;
    auto Seconds = [](Clock::time_point since) {
      return std::chrono::duration<double>(Clock::now() - since).count();
    };
    auto wait_start = Clock::now();
    for (int64_t s = 0; source->Next(&batch); ++s, ++global_step) {
      data_s += Seconds(wait_start);
      auto step_start = Clock::now();
      BatchTensors t = ToTensors(batch, data.feature_sizes());
      at::Tensor sample_weight = batch.weight.empty()
                                     ? at::ones({batch.size})
                                     : at::tensor(batch.weight, at::kFloat).view({batch.size});
      StepKey key{seed, epoch, global_step, batch.sample};
      ModelOutput out = model->Forward(t, key, /*training=*/true);
      // This worker's share of the global loss (NOTE [gradient scaling rule], grad_sync.h).
      at::Tensor weight = (class_weights.defined() ? class_weights.index_select(0, t.label)
                                                   : at::ones({batch.size})) *
                          sample_weight;
      at::Tensor nll =
          at::nll_loss(at::log_softmax(out.logits, -1), t.label, {}, at::Reduction::None);
      at::Tensor total_weight = weight.sum().to(at::kDouble).reshape({1});
      auto reduce_start = Clock::now();
      if (w > 1) world->AllReduce(total_weight, ReduceOp::kSum);
      reduce_s += Seconds(reduce_start);
      double denominator = total_weight.item<double>();
      at::Tensor task = (nll * weight).sum() / (denominator > 0 ? denominator : 1.0);
      at::Tensor router = out.aux_loss / static_cast<double>(w);
      at::Tensor loss = task + tc.gate_loss_weight() * router;
      optimizer.ZeroGrad();
      loss.backward();
      reduce_start = Clock::now();
      sync.Synchronize();
      reduce_s += Seconds(reduce_start);
      optimizer.Step();
      at::Tensor values =
          at::stack({loss.detach(), task.detach(), router.detach()}).to(at::kDouble);
      reduce_start = Clock::now();
      if (w > 1) world->AllReduce(values, ReduceOp::kSum);
      reduce_s += Seconds(reduce_start);
      step_s += Seconds(step_start);
      const double* v = values.data_ptr<double>();
      if (!std::isfinite(v[0])) {
        Fail(ErrorCode::kFailedPrecondition, "epoch ", epoch, " step ", s,
             ": the loss is not finite (", v[0], "); lower training.lr");
      }
      result.step_losses.push_back(v[0]);
      record.train_loss += v[0];
      record.task_loss += v[1];
      record.router_loss += v[2];
      epoch_samples += static_cast<int64_t>(batch.size);
      bool last = s + 1 == steps;
      int every = config.metrics().log_every_steps();
      if (log != nullptr && every > 0 && ((s + 1) % every == 0 || last)) {
        double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        double rate =
            epoch_samples * w / std::chrono::duration<double>(Clock::now() - epoch_start).count();
        double left = elapsed / (global_step + 1) * (total_steps - global_step - 1);
        *log << "epoch " << epoch + 1 << "/" << tc.epochs() << " step " << s + 1 << "/" << steps
             << " loss " << std::fixed << std::setprecision(4) << v[0] << " "
             << std::setprecision(1) << rate << " samples/s, " << FormatDuration(left) << " left\n"
             << std::defaultfloat << std::flush;
      }
      wait_start = Clock::now();
    }
    at::Tensor seen = at::tensor({epoch_samples, model->dropped_rows()}, at::kLong);
    if (w > 1) world->AllReduce(seen, ReduceOp::kSum);
    double seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    record.samples_per_s = seen[0].item<int64_t>() / seconds;
    record.dropped_rows = seen[1].item<int64_t>() - dropped_before;
    dropped_before = seen[1].item<int64_t>();
    record.train_loss /= steps;
    record.task_loss /= steps;
    record.router_loss /= steps;
    record.exchange_s = (exchange.seconds - exchange_before) / steps;
    record.reduce_s = reduce_s / steps;
    record.data_s = data_s / steps;
    record.compute_s = step_s / steps - record.exchange_s - record.reduce_s;
    model->eval();
    record.validation =
        Evaluate(*model, data, validation, num_classes, c_count, class_weights, world);
    const auto& val = record.validation.metrics.overall;
    if (log != nullptr) {
      *log << "epoch " << epoch + 1 << " done: train loss " << std::setprecision(4)
           << record.train_loss << " (task " << record.task_loss << ", router "
           << record.router_loss << "), validation acc " << val.accuracy << " f1 " << val.macro_f1
           << " auc " << val.auc << ", " << std::setprecision(1) << std::fixed
           << record.samples_per_s << " samples/s; per step: compute " << std::setprecision(2)
           << 1e3 * record.compute_s << " ms, exchange " << 1e3 * record.exchange_s
           << " ms, reduce " << 1e3 * record.reduce_s << " ms, data " << 1e3 * record.data_s
           << " ms\n"
           << std::defaultfloat << std::setprecision(6);
    }
    AppendJsonLine(metrics_path, {{"event", "epoch"},
                                  {"seed", seed},
                                  {"epoch", epoch},
                                  {"workers", w},
                                  {"phase", phase == EpochPhase::kWarmup ? "warmup" : "shuffled"},
                                  {"train_loss", record.train_loss},
                                  {"task_loss", record.task_loss},
                                  {"router_loss", record.router_loss},
                                  {"samples_per_s", record.samples_per_s},
                                  {"dropped_rows", record.dropped_rows},
                                  {"step_ms",
                                   {{"compute", 1e3 * record.compute_s},
                                    {"exchange", 1e3 * record.exchange_s},
                                    {"reduce", 1e3 * record.reduce_s},
                                    {"data", 1e3 * record.data_s}}},
                                  {"validation", MetricsJson(val)}});
    double score = val.accuracy;
    if (tc.selection() == config::TrainingConfig::AUC) score = val.auc;
    if (tc.selection() == config::TrainingConfig::MACRO_F1) score = val.macro_f1;
    if (std::isnan(score)) score = -1;
    if (score > best_score) {  // strictly higher, as the authors' code
      best_score = score;
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
  result.test = Evaluate(*model, data, test, num_classes, c_count, class_weights, world);
  for (const at::Tensor& p : replicated) {
    at::Tensor bytes = p.detach().contiguous();
    result.replicated_crc =
        Crc32c(bytes.data_ptr(), bytes.numel() * bytes.element_size(), result.replicated_crc);
  }
  const auto& t = result.test.metrics.overall;
  AppendJsonLine(metrics_path, {{"event", "test"},
                                {"seed", seed},
                                {"workers", w},
                                {"best_epoch", result.best_epoch},
                                {"validation", MetricsJson(result.best_validation.metrics.overall)},
                                {"test", MetricsJson(t)}});
  if (!options.run_dir.empty()) {
    // The checkpoint holds every expert, gathered from their owners, in the one-process
    // layout: it loads at any worker count.
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& item : model->named_parameters()) {
      at::Tensor value = item.value().detach();
      if (layout_ptr != nullptr && IsExpertParameter(item.key())) {
        value = GatherExperts(value, layout.placement, *layout.expert_parallel);
      }
      tensors.push_back({item.key(), value});
    }
    result.checkpoint_dir = options.run_dir + "/checkpoint";
    if (lead) {
      CheckpointInfo info;
      info.epoch = result.best_epoch;
      info.step = total_steps / tc.epochs() * (result.best_epoch + 1);
      info.seed = seed;
      info.config_text = config.DebugString();
      info.validation_accuracy = result.best_validation.metrics.overall.accuracy;
      info.workers = w;
      SaveCheckpoint(tensors, info, result.checkpoint_dir);
    }
    if (w > 1) world->Barrier();
  }
  if (log != nullptr) {
    *log << "\nseed " << seed << ": best validation "
         << config::TrainingConfig::Selection_Name(tc.selection()) << " " << best_score
         << " at epoch " << result.best_epoch + 1 << "; test split, per modality combination:\n"
         << FormatGroupTable(result.test.metrics, CombinationNames(prepared));
  }
  return result;
}

}  // namespace flexmoe
