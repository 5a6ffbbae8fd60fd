// The Trainer: construction of the model, optimizer and groups; the epoch and step loop;
// best selection; checkpoints and resume; the test evaluation and export (trainer.h).
#include "trainer/train/trainer.h"

#include <ATen/ATen.h>
#include <glog/logging.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <ostream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/comm/gather_bytes.h"
#include "cluster/metrics/run_records.h"
#include "data_loader/combinations.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/plan_batch_source.h"
#include "proto/config_compare.h"
#include "proto/config_loader.h"
#include "trainer/checkpoint/best_export.h"
#include "trainer/model/model.h"
#include "trainer/model/placement_policy.h"
#include "trainer/train/adam.h"
#include "trainer/train/best_selection.h"
#include "trainer/train/calibration.h"
#include "trainer/train/compute_threads.h"
#include "trainer/train/device.h"
#include "trainer/train/grad_sync.h"
#include "trainer/train/modality_dropout.h"
#include "trainer/train/train_log.h"
#include "trainer/train/weight_average.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

// Values summed over the workers each step (Step): loss, task loss, router loss, and the
// checkpoint and stop requests.
constexpr int64_t kStepValues = 5;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// training.precision as the model's products; BF16 where this CPU and build cannot run it
// is refused, naming the field and what is missing.
GemmPrecision TrainingPrecision(const config::TrainingConfig& tc) {
  if (tc.precision() != config::TrainingConfig::BF16) return GemmPrecision::kFp32;
  if (!Bf16GemmAvailable()) {
    Fail(ErrorCode::kInvalidArgument,
         "config field training.precision: BF16 cannot run here: ", Bf16GemmUnavailableReason(),
         "; use FP32");
  }
  return GemmPrecision::kBf16;
}

// training.lr at step `step` of an epoch of `steps` (training.lr_schedule).
double ScheduledLr(const config::TrainingConfig& tc, int epoch, int64_t step, int64_t steps) {
  if (tc.lr_schedule() == config::TrainingConfig::CONSTANT) return tc.lr();
  const double t = (epoch + static_cast<double>(step) / std::max<int64_t>(steps, 1)) / tc.epochs();
  return tc.lr() * 0.5 * (1 + std::cos(M_PI * std::min(t, 1.0)));
}

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
  full.index_copy_(0, at::tensor(position, at::kLong).to(rows.device()), rows);
  return full;
}

// Time and samples of the epoch in progress (this process's part of it).
struct EpochClock {
  Clock::time_point start = Clock::now();
  double data_s = 0, reduce_s = 0, step_s = 0, exchange_before = 0;
  int64_t samples = 0, steps = 0;
  int64_t rows_before = 0;   // rows this rank's experts had processed when the epoch began
  int64_t bytes_before = 0;  // token bytes this rank had sent when the epoch began
  std::vector<std::vector<int64_t>> tokens_before;  // StepTotals::tokens then
};

}  // namespace

// What a run tells: the progress stream (rank 0; redrawn in place on a terminal), the
// metrics sink (the job's coordinator, or a local writer of its own), and the hooks that
// see every step, epoch and checkpoint (the metrics and progress logs, then the caller's).
struct RunLogs {
  std::ostream* log = nullptr;
  std::unique_ptr<RedrawStream> redraw;        // rank 0 with redraw_progress
  std::unique_ptr<LocalMetricsSink> own_sink;  // when TrainOptions::metrics_sink is null
  MetricsSink* sink = nullptr;
  std::unique_ptr<MetricsLog> metrics;
  std::unique_ptr<ProgressLog> progress;
  std::vector<TrainHook*> hooks;
};

// What a run is given and derives once: fixed for its life.
struct RunContext {
  RunContext(const config::Config& config_in, const PreparedDataset& prepared_in,
             const Samples* data_in, uint64_t seed_in, const TrainOptions& options_in);
  RunContext(const RunContext&) = delete;  // tc refers into config
  RunContext& operator=(const RunContext&) = delete;

  config::Config config;
  const config::TrainingConfig& tc;
  const PreparedDataset& prepared;
  const Samples* data;  // null: every batch comes from options.batches
  std::vector<int> feature_sizes;
  const uint64_t seed;
  TrainOptions options;
  Communicator* world;
  c10::Device device{c10::kCPU};  // training.device (trainer/train/device.h)
  int w = 1, rank = 0;
  int num_classes, c_count;
};

// The model and what trains it: process groups and the placement, the model, the gradient
// sync, the optimizer and the loss's class weights.
struct ModelParts {
  ProcessGroups groups;
  ParallelLayout layout;
  const ParallelLayout* layout_ptr = nullptr;
  ExchangeStats exchange;
  FlexMoeModel model{nullptr};
  std::unique_ptr<GradientSynchronizer> sync;
  std::unique_ptr<FusedAdam> optimizer;
  at::Tensor class_weights;
};

// This worker's batches: training (split 0) and its evaluation passes (1, 2).
struct SplitSources {
  std::unique_ptr<BatchSource> source, validation, test;
};

// The training-state checkpoints: the writer, whether the run writes them, the newest
// written, and the rows dropped before this process started (resumed runs).
struct CheckpointParts {
  std::unique_ptr<TrainCheckpointer> checkpointer;
  bool checkpoints_enabled = false;
  int64_t dropped_offset = 0;
  std::string last_checkpoint;
};

struct Trainer::Impl {
  Impl(const config::Config& config, const PreparedDataset& prepared, const Samples* data,
       uint64_t seed, const TrainOptions& options);

  // Construction steps: process groups and the placement (layout.placement, the worker's
  // one copy: the model is built from it, the checkpointers read it), the batch source, the
  // checkpointer, the metrics and progress logs.
  void MakeLayout();
  // Split 0: this worker's training batches; 1, 2: its evaluation passes.
  std::unique_ptr<BatchSource> MakeSource(uint32_t split);
  void MakeCheckpointer();
  CheckpointContext CheckpointContextFor(int keep_last) const;
  void BuildModel();  // the model, optimizer and gradient sync for the current layout
  // LOAD_AWARE: packs the experts anew from the loads measured this epoch, moving them.
  void Repack(EpochClock* clock, EpochRecord* record);
  std::map<int, std::vector<double>> EpochLoads(const EpochClock& clock);
  void MakeLogs();

  void Resume(const std::string& dir);
  TrainResult Run();
  bool RunEpoch(TrainResult* result);
  bool Stopped(TrainResult* result);  // records a stop; false
  // One step: forward, backward, gradient sync, update; the global losses and requests.
  StepRequests Step(const DecodedBatch& batch, EpochClock* clock, TrainResult* result);
  // The global batch's sum of loss weights (class weight x sample weight): from the batch's
  // global_label_weight, or by an all-reduce when the source does not provide it.
  double LossDenominator(const DecodedBatch& batch, const at::Tensor& weight, EpochClock* clock);
  void EndEpoch(EpochClock* clock, bool checkpoint, TrainResult* result);
  void Checkpoint();
  void Finish(TrainResult* result);
  void Export(TrainResult* result);
  // training.early_stopping_patience epochs after warm-up without a better validation score.
  bool EarlyStopped() const;
  int64_t GlobalDroppedRows();
  template <typename F>
  void ForEachHook(F f) {
    for (TrainHook* hook : logs.hooks) f(*hook);
  }

  RunContext ctx;
  ModelParts net;
  SplitSources splits;
  CheckpointParts saves;
  TrainState state;
  RunLogs logs;
  StepTotals totals;
};

RunContext::RunContext(const config::Config& config_in, const PreparedDataset& prepared_in,
                       const Samples* data_in, uint64_t seed_in, const TrainOptions& options_in)
    : config(config_in),
      tc(config.training()),
      prepared(prepared_in),
      data(data_in),
      feature_sizes(prepared_in.feature_sizes()),
      seed(seed_in),
      options(options_in),
      world(options_in.world),
      w(world != nullptr ? world->size() : 1),
      rank(world != nullptr ? world->rank() : 0),
      num_classes(prepared.meta.num_classes()),
      c_count(static_cast<int>(Combinations(static_cast<int>(feature_sizes.size())).size())) {
  device = TrainingDevice(tc.device(), options.local_rank);
}

Trainer::Impl::Impl(const config::Config& config_in, const PreparedDataset& prepared_in,
                    const Samples* data_in, uint64_t seed_in, const TrainOptions& options_in)
    : ctx(config_in, prepared_in, data_in, seed_in, options_in) {
  const int m_count = static_cast<int>(ctx.feature_sizes.size());
  if (m_count != ctx.config.data().modalities_size()) {
    Fail(ErrorCode::kInvalidArgument, ctx.prepared.dir, ": prepared with ", m_count,
         " modalities, the config names ", ctx.config.data().modalities_size(),
         "; prepare the dataset again");
  }
  if (ctx.options.threads > 0) SetComputeThreads(ctx.options.threads);
  logs.log = ctx.rank == 0 ? ctx.options.log : nullptr;
  if (logs.log != nullptr && ctx.options.redraw_progress) {
    logs.redraw = std::make_unique<RedrawStream>(*logs.log);
    logs.log = &logs.redraw->stream();
  }

  MakeLayout();
  state.seed = ctx.seed;
  BuildModel();
  if (ctx.tc.class_weights_size() > 0) {
    std::vector<float> cw(ctx.tc.class_weights().begin(), ctx.tc.class_weights().end());
    net.class_weights = at::tensor(cw, at::kFloat).to(ctx.device);
  }

  if (ctx.prepared.split_size(0) == 0) {
    Fail(ErrorCode::kInvalidArgument, ctx.prepared.dir, ": no training samples");
  }
  splits.source = MakeSource(0);
  splits.validation = MakeSource(1);
  splits.test = MakeSource(2);

  MakeCheckpointer();
  MakeLogs();
  // The job's record shows the placement this run trains with (each seed's run starts from
  // the job's placement, whatever an earlier seed re-packed).
  if (net.layout_ptr != nullptr) {
    for (TrainHook* hook : ctx.options.hooks) {
      hook->PlacementChanged(net.layout.placement, state.progress.position);
    }
  }
}

void Trainer::Impl::MakeLayout() {
  // Process groups and the expert placement (W > 1 only; one process runs unsharded).
  const std::vector<int> sparse_layers = FlexMoeModelImpl::SparseLayers(ctx.config.model());
  net.layout.placement = PlacementMap::Balanced(sparse_layers, ctx.config.model().num_experts(), 1);
  if (ctx.world != nullptr && ctx.w > 1) {
    net.groups = MakeProcessGroups(*ctx.world, ctx.options.expert_parallel_degree);
    const int ep = net.groups.expert_parallel->size();
    PlacementMap placement = ctx.options.placement != nullptr
                                 ? *ctx.options.placement
                                 : MakePlacement(ctx.config, ctx.prepared, ep);
    if (placement.ranks != ep) {
      Fail(ErrorCode::kInvalidArgument, "expert placement over ", placement.ranks,
           " ranks for an expert-parallel group of ", ep);
    }
    placement.Check();
    if (logs.log != nullptr) {
      *logs.log << "expert placement " << DescribePlacement(ctx.config, ctx.prepared, placement)
                << "\n";
    }
    net.layout.placement = placement;
    net.layout.expert_rank = net.groups.expert_parallel->rank();
    net.layout.expert_parallel = net.groups.expert_parallel.get();
    net.layout.data_parallel = ctx.world;
    net.layout.exchange_stats = &net.exchange;
    net.layout_ptr = &net.layout;
  }
}

std::unique_ptr<BatchSource> Trainer::Impl::MakeSource(uint32_t split) {
  if (ctx.options.batches) return ctx.options.batches(split, ctx.rank, ctx.w);
  if (ctx.data == nullptr) {
    Fail(ErrorCode::kInvalidArgument, "trainer: neither samples nor a batch source");
  }
  const int m_count = static_cast<int>(ctx.feature_sizes.size());
  PlanOptions base = EvaluationPlanOptions(ctx.w, m_count);
  if (split == 0) {
    base = PlanOptions();
    base.seed = ctx.seed;
    base.world_size = ctx.w;
    base.global_batch = ctx.tc.batch_size();
    base.remainder = ctx.tc.remainder();
    base.batching = ctx.tc.batching();
    base.num_modalities = m_count;
  }
  return std::make_unique<PlanBatchSource>(*ctx.data, ctx.prepared, split, base,
                                           ctx.tc.warmup_epochs(), ctx.rank);
}

void Trainer::Impl::BuildModel() {
  torch::manual_seed(ctx.seed);
  ModelShape shape{ctx.feature_sizes,
                   ctx.num_classes,
                   {ctx.config.data().modalities().begin(), ctx.config.data().modalities().end()},
                   VolumeVoxels(ctx.prepared.meta),
                   BinEdges(ctx.prepared.meta)};
  net.model = FlexMoeModel(ctx.config.model(), shape, static_cast<int64_t>(ctx.seed),
                           net.layout_ptr, TrainingPrecision(ctx.tc));
  // Initialised on the host (the same values on every device), then moved.
  net.model->to(ctx.device);
  net.model->CountTokensInto(&totals.tokens);  // kept across a re-pack's rebuild
  state.parameters = net.model->Parameters();
  std::vector<at::Tensor> all, replicated, experts;
  for (const ModelParameter& p : state.parameters) {
    all.push_back(p.tensor);
    (p.group.is_expert() ? experts : replicated).push_back(p.tensor);
  }
  net.sync = std::make_unique<GradientSynchronizer>(
      replicated, experts, ctx.world, net.groups.expert_data_parallel.get(), 4 << 20, kStepValues);
  AdamOptions adam{ctx.tc.lr()};
  adam.weight_decay = ctx.tc.weight_decay();
  net.optimizer = std::make_unique<FusedAdam>(all, adam);
  state.exp_avg = net.optimizer->exp_avg();
  state.exp_avg_sq = net.optimizer->exp_avg_sq();
  state.average.clear();
  if (ctx.tc.average_epochs() > 0) {
    for (const at::Tensor& p : all) state.average.push_back(p.detach().clone());
  }
}

// Each sparse layer's tokens per expert this epoch, summed over the workers (exact: every
// rank decides alike), keyed by the layer's fusion-layer index.
std::map<int, std::vector<double>> Trainer::Impl::EpochLoads(const EpochClock& clock) {
  const std::vector<int> sparse = FlexMoeModelImpl::SparseLayers(ctx.config.model());
  const int64_t e_count = ctx.config.model().num_experts();
  const int64_t cells = totals.tokens.empty() ? 0 : static_cast<int64_t>(totals.tokens[0].size());
  const int64_t c_count = cells / e_count;
  at::Tensor tokens = at::zeros({static_cast<int64_t>(sparse.size()), e_count}, at::kLong);
  for (size_t l = 0; l < sparse.size() && l < totals.tokens.size(); ++l) {
    for (int64_t i = 0; i < cells; ++i) {
      const int64_t before =
          l < clock.tokens_before.size() && i < static_cast<int64_t>(clock.tokens_before[l].size())
              ? clock.tokens_before[l][i]
              : 0;
      tokens[static_cast<int64_t>(l)][i / c_count] += totals.tokens[l][i] - before;
    }
  }
  ctx.world->AllReduce(tokens, ReduceOp::kSum);
  std::map<int, std::vector<double>> loads;
  for (size_t l = 0; l < sparse.size(); ++l) {
    const int64_t* row = tokens[static_cast<int64_t>(l)].data_ptr<int64_t>();
    loads[sparse[l]].assign(row, row + e_count);
  }
  return loads;
}

void Trainer::Impl::Repack(EpochClock* clock, EpochRecord* record) {
  if (net.layout_ptr == nullptr ||
      ctx.config.cluster().placement() != config::ClusterConfig::LOAD_AWARE ||
      ctx.options.run_dir.empty()) {
    return;
  }
  const Repacked repacked = RepackByLoad(net.layout.placement, EpochLoads(*clock));
  if (repacked.moved.empty()) return;  // no layer worth moving experts
  // A move a crashed run left behind would be taken for this one (Save keeps a complete
  // checkpoint of the same step): gone first.
  RunOnRankZero(ctx.world, [&] { std::filesystem::remove_all(ctx.options.run_dir + "/.repack"); });
  // The experts, their moments and best values move to their new owners through a
  // checkpoint of the state: written by the old owners under the current placement, read
  // by the new ones under the new (the checkpointers read the layout's placement).
  TrainCheckpointer move(CheckpointContextFor(1), ctx.options.run_dir + "/.repack");
  state.progress.dropped_rows = GlobalDroppedRows();
  const std::string dir = move.Save(state);
  net.layout.placement = repacked.placement;
  BuildModel();
  move.Load(dir, &state);
  net.optimizer->set_steps(state.progress.adam_steps);
  saves.dropped_offset = state.progress.dropped_rows;
  // Every rank has read its experts before rank 0 removes the files.
  ctx.world->Barrier();
  RunOnRankZero(ctx.world, [&] { std::filesystem::remove_all(ctx.options.run_dir + "/.repack"); });
  record->repacked = true;
  record->repacked_placement = net.layout.placement;
  record->imbalance_before = repacked.imbalance_before;
  record->imbalance_after = repacked.imbalance_after;
  for (TrainHook* hook : ctx.options.hooks) {
    hook->PlacementChanged(net.layout.placement, state.progress.position);
  }
  if (logs.log != nullptr) {
    *logs.log << "expert placement re-packed from the measured loads (" << repacked.moved.size()
              << " of " << net.layout.placement.layers.size() << " layers): imbalance "
              << repacked.imbalance_before << " -> " << repacked.imbalance_after << "\n";
  }
}

CheckpointContext Trainer::Impl::CheckpointContextFor(int keep_last) const {
  CheckpointContext context;
  context.world = ctx.world;
  context.expert_rank = net.layout_ptr != nullptr ? net.layout.expert_rank : 0;
  context.saves_experts = net.layout_ptr == nullptr || ctx.rank < net.groups.ep_degree;
  context.expert_parallel_degree = net.layout_ptr != nullptr ? net.groups.ep_degree : 1;
  context.placement = &net.layout.placement;
  context.config_text = ConfigToText(ctx.config);
  context.config_hash = ComputationHash(ctx.config);
  context.dataset_index_crc32c = ctx.prepared.meta.index_crc32c();
  context.dataset_samples = ctx.prepared.size();
  context.keep_last = keep_last;
  return context;
}

void Trainer::Impl::MakeCheckpointer() {
  CheckpointContext context = CheckpointContextFor(ctx.config.checkpoint().keep_last());
  context.fault = ctx.options.fault;
  const std::string run_dir = ctx.options.run_dir;
  saves.checkpointer = std::make_unique<TrainCheckpointer>(
      context, run_dir.empty() ? std::string() : RunDir(run_dir).checkpoints());
  saves.checkpoints_enabled = !run_dir.empty() && (ctx.config.checkpoint().every_epochs() > 0 ||
                                                   ctx.config.checkpoint().every_steps() > 0);
}

void Trainer::Impl::MakeLogs() {
  const std::string& run_dir = ctx.options.run_dir;
  logs.sink = ctx.options.metrics_sink;
  if (logs.sink == nullptr) {
    logs.own_sink = std::make_unique<LocalMetricsSink>(
        ctx.world, ctx.config.metrics().tensorboard(), ctx.config.metrics().per_worker_limit());
    logs.sink = logs.own_sink.get();
  }
  RunOnRankZero(ctx.world, [&] {
    if (run_dir.empty()) return;
    logs.sink->Open(run_dir);
    if (ctx.options.restart_metrics) logs.sink->ContinueAt(0);
  });
  const int every = ctx.config.metrics().log_every_steps();
  MetricsLog::Shape shape{FlexMoeModelImpl::SparseLayers(ctx.config.model()),
                          ctx.config.model().num_experts(), ctx.c_count};
  logs.metrics =
      std::make_unique<MetricsLog>(logs.sink, ctx.rank, ctx.seed, ctx.w, every, std::move(shape));
  logs.progress = std::make_unique<ProgressLog>(logs.log, every, ctx.w, logs.redraw.get());
  logs.hooks = {logs.metrics.get(), logs.progress.get()};
  logs.hooks.insert(logs.hooks.end(), ctx.options.hooks.begin(), ctx.options.hooks.end());
}

void Trainer::Impl::Resume(const std::string& dir) {
  TrainManifest manifest = saves.checkpointer->Verify(dir);
  ResumeTarget target;
  target.config = &ctx.config;
  target.prepared_dir = ctx.prepared.dir;
  target.dataset_index_crc32c = ctx.prepared.meta.index_crc32c();
  target.dataset_samples = ctx.prepared.size();
  target.seed = ctx.seed;
  CheckResumable(dir, manifest, target);
  saves.checkpointer->Load(dir, &state);
  net.optimizer->set_steps(state.progress.adam_steps);
  saves.dropped_offset = state.progress.dropped_rows;
  // A checkpoint of this run: the later ones are an abandoned continuation, and the log
  // goes on from where the checkpoint was taken. A checkpoint of another run starts this
  // run's log with the resume line.
  namespace fs = std::filesystem;
  bool own = false;
  if (!ctx.options.run_dir.empty()) {
    fs::path checkpoint = fs::weakly_canonical(dir);
    if (!checkpoint.has_filename()) checkpoint = checkpoint.parent_path();  // "DIR/"
    own = checkpoint.parent_path() == fs::weakly_canonical(saves.checkpointer->checkpoints_dir());
  }
  if (own) saves.checkpointer->SetAsideLaterThan(manifest.step());
  RunOnRankZero(ctx.world, [&] {
    if (own) logs.sink->ContinueAt(state.progress.metrics_lines);
    logs.metrics->Resumed(dir, manifest);
  });
  for (TrainHook* hook : logs.hooks) {
    if (hook != logs.metrics.get()) hook->Resumed(dir, manifest);
  }
}

int64_t Trainer::Impl::GlobalDroppedRows() {
  at::Tensor dropped = at::tensor({net.model->dropped_rows()}, at::kLong);
  if (ctx.w > 1) ctx.world->AllReduce(dropped, ReduceOp::kSum);
  return saves.dropped_offset + dropped[0].item<int64_t>();
}

void Trainer::Impl::Checkpoint() {
  state.progress.adam_steps = net.optimizer->steps();
  state.progress.dropped_rows = GlobalDroppedRows();
  state.progress.metrics_lines = logs.sink->lines();
  // The lines the checkpoint counts are written before it is.
  RunOnRankZero(ctx.world, [&] { logs.sink->Flush(); });
  const auto start = Clock::now();
  saves.last_checkpoint = saves.checkpointer->Save(state);
  if (logs.log != nullptr) {
    uintmax_t bytes = 0;
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(saves.last_checkpoint, ec)) {
      bytes += f.file_size(ec);
    }
    *logs.log << "checkpoint " << saves.last_checkpoint << ": " << bytes / 1e6 << " MB in "
              << Since(start) << " s\n"
              << std::flush;
  }
  ForEachHook([&](TrainHook& h) { h.AfterCheckpoint(saves.last_checkpoint, state); });
}

StepRequests Trainer::Impl::Step(const DecodedBatch& batch, EpochClock* clock,
                                 TrainResult* result) {
  TrainPosition& position = state.progress.position;
  auto step_start = Clock::now();
  StepKey key{ctx.seed, position.epoch, position.global_step, batch.sample};
  BatchTensors host = ToTensors(batch, ctx.feature_sizes);
  HideModalities(ctx.tc.modality_dropout(), key, &host);
  BatchTensors t = ToDevice(std::move(host), ctx.device);
  at::Tensor sample_weight =
      batch.weight.empty() ? at::ones({batch.size}, at::TensorOptions(ctx.device))
                           : at::tensor(batch.weight, at::kFloat).view({batch.size}).to(ctx.device);
  ModelOutput out = net.model->Forward(t, key, /*training=*/true);
  // This worker's share of the global loss (NOTE [gradient scaling rule], grad_sync.h).
  at::Tensor weight =
      (net.class_weights.defined() ? net.class_weights.index_select(0, t.label)
                                   : at::ones({batch.size}, at::TensorOptions(ctx.device))) *
      sample_weight;
  at::Tensor nll = at::nll_loss(at::log_softmax(out.logits, -1), t.label, {}, at::Reduction::None);
  const double reduce_before = clock->reduce_s;
  const double denominator = LossDenominator(batch, weight, clock);
  at::Tensor task = (nll * weight).sum() / (denominator > 0 ? denominator : 1.0);
  at::Tensor router = out.aux_loss / static_cast<double>(ctx.w);
  at::Tensor loss = task + ctx.tc.gate_loss_weight() * router;
  net.optimizer->ZeroGrad();
  loss.backward();

  TrainPosition after = position;
  ++after.step_in_epoch;
  ++after.global_step;
  StepRequests mine;
  const int every_steps = ctx.config.checkpoint().every_steps();
  mine.checkpoint =
      saves.checkpoints_enabled && every_steps > 0 && after.global_step % every_steps == 0;
  ForEachHook([&](TrainHook& h) {
    StepRequests r = h.Request(after);
    mine.checkpoint = mine.checkpoint || r.checkpoint;
    mine.stop = mine.stop || r.stop;
  });
  // The losses and every rank's requests ride with the gradients' reduction.
  at::Tensor values =
      at::stack({loss.detach(), task.detach(), router.detach()}).to(at::kCPU, at::kDouble);
  values = at::cat(
      {values, at::tensor({mine.checkpoint ? 1.0 : 0.0, mine.stop ? 1.0 : 0.0}, at::kDouble)});
  auto reduce_start = Clock::now();
  net.sync->Synchronize(&values);
  clock->reduce_s += Since(reduce_start);
  net.optimizer->set_lr(
      ScheduledLr(ctx.tc, position.epoch, position.step_in_epoch, splits.source->steps_in_epoch()));
  net.optimizer->Step();
  state.progress.adam_steps = net.optimizer->steps();
  if (!state.average.empty()) {
    UpdateAverage(net.optimizer->parameters(),
                  AverageDecay(ctx.tc.average_epochs(), splits.source->steps_in_epoch(),
                               state.progress.adam_steps),
                  &state.average);
  }
  const double step_s = Since(step_start);
  clock->step_s += step_s;
  totals.step_s += step_s;
  totals.reduce_s += clock->reduce_s - reduce_before;
  const double* v = values.data_ptr<double>();
  if (!std::isfinite(v[0])) {
    Fail(ErrorCode::kFailedPrecondition, "epoch ", position.epoch, " step ", position.step_in_epoch,
         ": the loss is not finite (", v[0], "); lower training.lr");
  }
  result->step_losses.push_back(v[0]);
  state.progress.epoch.loss += v[0];
  state.progress.epoch.task_loss += v[1];
  state.progress.epoch.router_loss += v[2];
  position = after;
  clock->samples += batch.size;
  ++clock->steps;
  totals.samples += batch.size;
  ++totals.steps;
  totals.exchange_s = net.exchange.seconds;
  StepReport report{position,   ctx.tc.epochs(), splits.source->steps_in_epoch(), v[0], v[1], v[2],
                    batch.size, &totals};
  ForEachHook([&](TrainHook& h) { h.AfterStep(report); });
  return StepRequests{v[3] > 0, v[4] > 0};
}

double Trainer::Impl::LossDenominator(const DecodedBatch& batch, const at::Tensor& weight,
                                      EpochClock* clock) {
  if (!batch.global_label_weight.empty()) {
    double total = 0;
    for (size_t c = 0; c < batch.global_label_weight.size(); ++c) {
      if (batch.global_label_weight[c] == 0) continue;
      if (static_cast<int>(c) >= ctx.num_classes) {
        Fail(ErrorCode::kInvalidArgument, "batch of step ", state.progress.position.global_step,
             ": label ", c, " outside the ", ctx.num_classes, " classes");
      }
      const double cw =
          ctx.tc.class_weights_size() > 0 ? ctx.tc.class_weights(static_cast<int>(c)) : 1.0;
      total += cw * batch.global_label_weight[c];
    }
    return total;
  }
  // A source that does not know the global batch: one host all-reduce.
  at::Tensor total = weight.sum().to(at::kCPU, at::kDouble).reshape({1});
  auto start = Clock::now();
  if (ctx.w > 1) ctx.world->AllReduce(total, ReduceOp::kSum);
  clock->reduce_s += Since(start);
  return total.item<double>();
}

bool Trainer::Impl::Stopped(TrainResult* result) {
  result->last_checkpoint = saves.last_checkpoint;
  result->stopped = true;
  return false;
}

bool Trainer::Impl::RunEpoch(TrainResult* result) {
  TrainPosition& position = state.progress.position;
  net.model->train();
  splits.source->StartEpoch(position.epoch, position.step_in_epoch);
  const int64_t steps = splits.source->steps_in_epoch();
  if (position.step_in_epoch == 0) {
    state.progress.epoch = EpochSums{};
    state.progress.epoch.dropped_rows_at_start = GlobalDroppedRows();
  }
  EpochClock clock;
  clock.exchange_before = net.exchange.seconds;
  clock.rows_before = net.exchange.rows_received;
  clock.bytes_before = net.exchange.token_bytes_sent;
  clock.tokens_before = totals.tokens;
  bool checkpoint_at_end = false, stop_at_end = false;
  DecodedBatch batch;
  auto wait_start = Clock::now();
  while (splits.source->Next(&batch)) {
    const double waited = Since(wait_start);
    clock.data_s += waited;
    totals.data_s += waited;
    StepRequests requests = Step(batch, &clock, result);
    // At the epoch's last step, checkpoints (and stops) wait for its validation.
    const bool last = position.step_in_epoch == steps;
    const bool now = (requests.checkpoint || requests.stop) && !last;
    if (now && saves.checkpoints_enabled) Checkpoint();
    if (requests.stop && !last) return Stopped(result);
    checkpoint_at_end = checkpoint_at_end || (last && (requests.checkpoint || requests.stop));
    stop_at_end = stop_at_end || (last && requests.stop);
    wait_start = Clock::now();
  }
  EndEpoch(&clock, checkpoint_at_end, result);
  return stop_at_end ? Stopped(result) : true;
}

void Trainer::Impl::EndEpoch(EpochClock* clock, bool checkpoint, TrainResult* result) {
  TrainPosition& position = state.progress.position;
  const int64_t steps = splits.source->steps_in_epoch();
  EpochRecord record;
  record.epoch = position.epoch;
  record.warmup = position.epoch < ctx.tc.warmup_epochs();
  at::Tensor seen = at::tensor({clock->samples}, at::kLong);
  if (ctx.w > 1) ctx.world->AllReduce(seen, ReduceOp::kSum);
  record.samples_per_s = seen[0].item<int64_t>() / Since(clock->start);
  if (ctx.w > 1) {
    // The rows each rank's experts processed this epoch: the most loaded over the mean.
    at::Tensor rows =
        ctx.world
            ->AllGather(at::tensor({net.exchange.rows_received - clock->rows_before}, at::kLong))
            .to(at::kDouble);
    const double mean = rows.mean().item<double>();
    record.expert_imbalance = mean > 0 ? rows.max().item<double>() / mean : 1.0;
  }
  Repack(clock, &record);
  const int64_t dropped = GlobalDroppedRows();
  record.dropped_rows = dropped - state.progress.epoch.dropped_rows_at_start;
  state.progress.dropped_rows = dropped;
  record.train_loss = state.progress.epoch.loss / steps;
  record.task_loss = state.progress.epoch.task_loss / steps;
  record.router_loss = state.progress.epoch.router_loss / steps;
  const double run = std::max<int64_t>(clock->steps, 1);
  record.exchange_s = (net.exchange.seconds - clock->exchange_before) / run;
  record.exchange_bytes = static_cast<int64_t>(
      static_cast<double>(net.exchange.token_bytes_sent - clock->bytes_before) / run);
  record.reduce_s = clock->reduce_s / run;
  record.data_s = clock->data_s / run;
  record.compute_s = clock->step_s / run - record.exchange_s - record.reduce_s;
  net.model->eval();
  {
    // With training.average_epochs the average is validated and kept as the best.
    AverageSwappedIn averaged(net.optimizer->parameters(), state.average);
    record.validation = Evaluate(*net.model, *splits.validation, ctx.feature_sizes, ctx.num_classes,
                                 ctx.c_count, net.class_weights, ctx.world);
    const double score = SelectionScore(ctx.tc, record.validation.metrics.overall);
    if (TakeIfBest(ctx.tc, position.epoch, position.global_step, score, &state.progress.best)) {
      state.best.clear();
      for (const ModelParameter& p : state.parameters)
        state.best.push_back(p.tensor.detach().clone());
    }
  }
  ++position.epoch;
  position.step_in_epoch = 0;
  ForEachHook([&](TrainHook& h) { h.AfterEpoch(record, state); });
  // The epoch's record keeps the validation metrics, not its per-sample scores: kept for
  // every epoch, those would grow with epochs x validation samples.
  record.validation.DropPerSample();
  const int every = ctx.config.checkpoint().every_epochs();
  const bool scheduled = (every > 0 && position.epoch % every == 0) ||
                         position.epoch == ctx.tc.epochs() || EarlyStopped();
  if (saves.checkpoints_enabled && (scheduled || checkpoint)) Checkpoint();
  result->epochs.push_back(std::move(record));
}

bool Trainer::Impl::EarlyStopped() const { return flexmoe::EarlyStopped(ctx.tc, state.progress); }

void Trainer::Impl::Finish(TrainResult* result) {
  CHECK(!state.best.empty()) << "no epoch was validated";
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < state.parameters.size(); ++i) {
      state.parameters[i].tensor.copy_(state.best[i]);
    }
  }
  net.model->eval();
  result->best_epoch = state.progress.best.epoch;
  result->best_validation = Evaluate(*net.model, *splits.validation, ctx.feature_sizes,
                                     ctx.num_classes, ctx.c_count, net.class_weights, ctx.world);
  result->test = Evaluate(*net.model, *splits.test, ctx.feature_sizes, ctx.num_classes, ctx.c_count,
                          net.class_weights, ctx.world);
  result->calibration =
      FitCalibration(result->best_validation.log_probs, result->best_validation.labels,
                     ctx.num_classes, TrainingClassShares(ctx.prepared.meta, ctx.num_classes));
  for (const ModelParameter& p : state.parameters) {
    if (p.group.is_expert()) continue;
    at::Tensor bytes = p.tensor.detach().contiguous();
    result->replicated_crc =
        Crc32c(bytes.data_ptr(), bytes.numel() * bytes.element_size(), result->replicated_crc);
  }
  result->last_checkpoint = saves.last_checkpoint;
  ForEachHook([&](TrainHook& h) { h.AfterTraining(*result); });
  if (!ctx.options.run_dir.empty()) Export(result);
  if (logs.log != nullptr) {
    *logs.log << "\nseed " << ctx.seed << ": best validation "
              << config::TrainingConfig::Selection_Name(ctx.tc.selection()) << " "
              << (ctx.tc.selection() == config::TrainingConfig::LOG_LOSS
                      ? 1 / state.progress.best.score - 1
                      : state.progress.best.score)
              << " at epoch " << result->best_epoch + 1
              << "; test split, per modality combination:\n"
              << FormatGroupTable(result->test.metrics, CombinationNames(ctx.prepared));
  }
}

void Trainer::Impl::Export(TrainResult* result) {
  // Every expert, gathered from its owner, in the one-process layout: it loads at any
  // worker count.
  std::vector<ModelParameter> tensors;
  for (const ModelParameter& p : state.parameters) {
    ModelParameter out = p;
    out.tensor = p.tensor.detach();
    if (net.layout_ptr != nullptr && p.group.is_expert()) {
      out.tensor = GatherExperts(out.tensor, net.layout.placement.Layer(p.group.layer),
                                 *net.layout.expert_parallel);
    }
    tensors.push_back(std::move(out));
  }
  result->checkpoint_dir = RunDir(ctx.options.run_dir).export_dir();
  RunOnRankZero(ctx.world, [&] {
    CheckpointInfo info;
    info.epoch = result->best_epoch;
    info.step = state.progress.best.step;
    info.seed = ctx.seed;
    info.config_text = ConfigToText(ctx.config);
    info.validation_accuracy = result->best_validation.metrics.overall.accuracy;
    info.workers = ctx.w;
    info.temperature = result->calibration.temperature;
    info.calibration_bias = result->calibration.bias;
    info.dataset_text = DatasetMetaText(ctx.prepared.meta);
    SaveCheckpoint(tensors, info, result->checkpoint_dir);
  });
}

TrainResult Trainer::Impl::Run() {
  TrainResult result;
  result.seed = ctx.seed;
  if (ctx.options.restart > 0) {
    RunOnRankZero(ctx.world, [&] {
      RestartLine line;
      line.seed = ctx.seed;
      line.attempt = ctx.options.restart;
      line.reason = ctx.options.restart_reason;
      line.workers = ctx.w;
      line.from = ctx.options.resume_from;
      line.global_step = state.progress.position.global_step;
      logs.sink->RunRecord(ToJson(line));
    });
  }
  while (state.progress.position.epoch < ctx.tc.epochs() && !EarlyStopped()) {
    if (!RunEpoch(&result)) return result;
  }
  result.epochs_run = state.progress.position.epoch;
  result.early_stopped = state.progress.position.epoch < ctx.tc.epochs();
  if (result.early_stopped && logs.log != nullptr) {
    *logs.log << "early stop after epoch " << result.epochs_run << ": "
              << ctx.tc.early_stopping_patience() << " epochs without a better validation "
              << config::TrainingConfig::Selection_Name(ctx.tc.selection()) << " than epoch "
              << state.progress.best.epoch + 1 << "\n";
  }
  Finish(&result);
  return result;
}

Trainer::Trainer(const config::Config& config, const PreparedDataset& prepared, const Samples* data,
                 uint64_t seed, const TrainOptions& options)
    : impl_(std::make_unique<Impl>(config, prepared, data, seed, options)) {}
Trainer::~Trainer() = default;
void Trainer::Resume(const std::string& dir) { impl_->Resume(dir); }
TrainResult Trainer::Run() { return impl_->Run(); }
const TrainState& Trainer::state() const { return impl_->state; }
FlexMoeModelImpl& Trainer::model() { return *impl_->net.model; }

TrainResult Train(const config::Config& config, const PreparedDataset& prepared,
                  const Samples* data, uint64_t seed, const TrainOptions& options) {
  Trainer trainer(config, prepared, data, seed, options);
  if (!options.resume_from.empty()) trainer.Resume(options.resume_from);
  return trainer.Run();
}

}  // namespace flexmoe
