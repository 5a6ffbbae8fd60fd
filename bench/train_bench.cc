// Training throughput: samples/s and the per-step time split (encode, attention, routing,
// experts, head, backward, optimizer) of the Flex-MoE model on a prepared dataset, with
// the achieved GFLOP/s against a large GEMM measured in the same run and thread count.
// Usage: train_bench --config FILE [--batch B] [--threads T] [--steps N] [--warmup W]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "cluster/base/allocator.h"
#include "cluster/base/error.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/epoch_plan.h"
#include "experts/cpu_blas.h"
#include "proto/config_loader.h"
#include "trainer/model/model.h"
#include "trainer/model/phase_times.h"
#include "trainer/train/adam.h"
#include "trainer/train/compute_threads.h"
#include "trainer/train/trainer.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Forward FLOPs of one sample (multiply-adds count 2); training is about 3x this.
double ForwardFlopsPerSample(const config::ModelConfig& m, const std::vector<int>& features,
                             int classes) {
  const double p = m.patches(), d = m.hidden_dim(), e = m.num_experts(), k = m.top_k();
  const double n = p * features.size();
  double flops = 0;
  for (int f : features) flops += 2 * p * ((f + p - 1) / static_cast<int>(p)) * d;
  for (int l = 0; l < m.num_layers_fus(); ++l) {
    flops += 2 * n * d * d + 2 * n * d * 2 * d + 2 * n * n * d * 2 + 2 * n * d * d;
    flops += l % 2 == 0 ? 4 * n * d * e + k * n * 8 * d * d : n * 8 * d * d;
  }
  return flops + 2 * features.size() * d * classes;
}

// A size^3 SGEMM through `gemm` (repeated; the best of three rounds, as the machine is shared).
template <typename F>
double GemmGflops(int size, int repeats, F gemm) {
  at::Tensor a = at::randn({size, size}), b = at::randn({size, size}), c = at::empty({size, size});
  gemm(a, b, c);
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    auto start = Clock::now();
    for (int i = 0; i < repeats; ++i) gemm(a, b, c);
    best = std::max(best, 2.0 * size * size * size * repeats / Seconds(start) / 1e9);
  }
  return best;
}

struct BenchFlags {
  std::string config_path = "configs/adni_like.textproto";
  int batch = 8, threads = 1, steps = 200, warmup = 20;
  std::vector<std::string> overrides;
  std::string profile_path;  // a chrome trace of the timed steps (LibTorch's profiler)
};

// The flags; false (after the usage) when one is unknown or out of range.
bool ParseBenchFlags(int argc, char** argv, BenchFlags* f) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--config")
      f->config_path = argv[i + 1];
    else if (flag == "--batch")
      f->batch = std::stoi(argv[i + 1]);
    else if (flag == "--threads")
      f->threads = std::stoi(argv[i + 1]);
    else if (flag == "--steps")
      f->steps = std::stoi(argv[i + 1]);
    else if (flag == "--warmup")
      f->warmup = std::stoi(argv[i + 1]);
    else if (flag == "--set")
      f->overrides.push_back(argv[i + 1]);
    else if (flag == "--profile")
      f->profile_path = argv[i + 1];
    else {
      std::cerr << "usage: train_bench --config FILE [--batch B] [--threads T] [--steps N] "
                   "[--warmup W] [--set path=value] [--profile TRACE.json]\n";
      return false;
    }
  }
  if (f->steps < 1 || f->warmup < 0 || f->batch < 1 || f->threads < 1) {
    std::cerr << "train_bench: --steps, --batch and --threads must be >= 1 and --warmup >= 0\n";
    return false;
  }
  return true;
}

struct StepTimes {
  PhaseTimes phases;
  double seconds = 0;         // the timed steps'
  std::vector<double> steps;  // per timed step, for the quantiles
};

// Trains `flags.warmup + flags.steps` steps of the training split's shuffled batches and
// times the last flags.steps of them.
StepTimes TimeSteps(const BenchFlags& flags, const config::Config& config,
                    const PreparedDataset& prepared, DecodedDataset& data, FlexMoeModel& model) {
  FusedAdam optimizer(model->parameters(), AdamOptions{config.training().lr()});
  std::vector<uint32_t> train = SamplesOfSplit(prepared.index, 0);
  std::vector<int> counts(prepared.size(), 0);
  auto order = EpochOrder(train, counts, 1, 5, EpochPhase::kShuffled);
  auto batches = Batches(order, flags.batch);
  if (batches.back().size() < static_cast<size_t>(flags.batch)) batches.pop_back();
  StepTimes times;
  model->train();
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  for (int s = 0; s < flags.warmup + flags.steps; ++s) {
    const bool timed = s >= flags.warmup;
    if (s == flags.warmup && !flags.profile_path.empty()) {
      profile = std::make_unique<torch::autograd::profiler::RecordProfile>(flags.profile_path);
    }
    model->SetPhaseTimes(timed ? &times.phases : nullptr);
    DecodedBatch decoded = data.Gather(batches[s % batches.size()]);
    BatchTensors t = ToTensors(decoded, data.feature_sizes());
    auto start = Clock::now();
    ModelOutput out = model->Forward(t, StepKey{1, 0, s, decoded.sample}, true);
    at::Tensor loss = at::nll_loss(at::log_softmax(out.logits, -1), t.label) +
                      config.training().gate_loss_weight() * out.aux_loss;
    optimizer.ZeroGrad();
    auto backward_start = Clock::now();
    loss.backward();
    if (timed) times.phases.Add(Phase::kBackward, Seconds(backward_start));
    auto optimizer_start = Clock::now();
    optimizer.Step();
    if (timed) {
      times.phases.Add(Phase::kOptimizer, Seconds(optimizer_start));
      times.steps.push_back(Seconds(start));
      times.seconds += times.steps.back();
    }
  }
  return times;
}

void PrintResults(const BenchFlags& flags, const config::Config& config, const DecodedDataset& data,
                  int classes, StepTimes& times) {
  const int batch = flags.batch, steps = flags.steps;
  double samples_per_s = steps * batch / times.seconds;
  double flops = 3 * ForwardFlopsPerSample(config.model(), data.feature_sizes(), classes);
  double achieved = flops * samples_per_s / 1e9;
  // The model's large products go through experts/cpu_blas.h (oneDNN where present); LibTorch's
  // matmul goes through libblas.so.3 (OpenBLAS). The first is the reference for the share.
  const double gemm =
      GemmGflops(1024, 10, [](const at::Tensor& a, const at::Tensor& b, at::Tensor& c) {
        Gemm(false, false, a.size(0), b.size(1), a.size(1), 1.0f, a.data_ptr<float>(), a.size(1),
             b.data_ptr<float>(), b.size(1), 0.0f, c.data_ptr<float>(), c.size(1));
      });
  const double blas_gemm = GemmGflops(
      1024, 2,
      [](const at::Tensor& a, const at::Tensor& b, at::Tensor& c) { at::mm_out(c, a, b); });
  // On a shared machine the mean is at the mercy of neighbours; the 10% and 50% quantiles of
  // the step times say what the code does when the machine is quiet.
  std::sort(times.steps.begin(), times.steps.end());
  const double p10 = times.steps[times.steps.size() / 10];
  const double p50 = times.steps[times.steps.size() / 2];
  std::printf(
      "config %s batch %d threads %d: %.1f samples/s, %.3f ms/step, %.1f MFLOP/sample, "
      "%.2f GFLOP/s achieved, large GEMM %.2f GFLOP/s (%.0f%%; LibTorch matmul %.2f)\n"
      "  step time quantiles: p10 %.3f ms (%.1f samples/s), median %.3f ms (%.1f samples/s)\n",
      flags.config_path.c_str(), batch, flags.threads, samples_per_s, 1e3 * times.seconds / steps,
      flops / 1e6, achieved, gemm, 100 * achieved / gemm, blas_gemm, 1e3 * p10, batch / p10,
      1e3 * p50, batch / p50);
  double accounted = 0;
  for (int p = 0; p < static_cast<int>(Phase::kCount); ++p) {
    double ms = 1e3 * times.phases.seconds[p] / steps;
    accounted += ms;
    std::printf("  %-10s %8.3f ms/step %5.1f%%\n", PhaseName(static_cast<Phase>(p)), ms,
                100 * times.phases.seconds[p] / times.seconds);
  }
  std::printf("  %-10s %8.3f ms/step\n", "other", 1e3 * times.seconds / steps - accounted);
  std::printf(
      "{\"bench\": \"train\", \"batch\": %d, \"threads\": %d, \"samples_per_s\": %.1f, "
      "\"gflops\": %.2f, \"gemm_gflops\": %.2f, \"matmul_gflops\": %.2f, \"p10_ms\": %.3f, "
      "\"median_ms\": %.3f}\n",
      batch, flags.threads, samples_per_s, achieved, gemm, blas_gemm, 1e3 * p10, 1e3 * p50);
}

int Main(int argc, char** argv) {
  BenchFlags flags;
  if (!ParseBenchFlags(argc, argv, &flags)) return 2;
  SetComputeThreads(flags.threads);
  config::Config config = LoadConfig(flags.config_path, flags.overrides);
  PreparedDataset prepared = PreparedDataset::Open(config.data().prepared_dir());
  DecodedDataset data(prepared);
  const int classes = prepared.meta.num_classes();
  torch::manual_seed(1);
  FlexMoeModel model(
      config.model(),
      ModelShape{data.feature_sizes(),
                 classes,
                 {config.data().modalities().begin(), config.data().modalities().end()},
                 {},
                 {}},
      1);
  StepTimes times = TimeSteps(flags, config, prepared, data, model);
  PrintResults(flags, config, data, classes, times);
  return 0;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  flexmoe::KeepLargeAllocationsInTheHeap();  // as `flexmoe train` does (launch/main.cc, for the
                                             // worker)
  return flexmoe::RunReportingErrors("train_bench", [&] { return flexmoe::Main(argc, argv); });
}
