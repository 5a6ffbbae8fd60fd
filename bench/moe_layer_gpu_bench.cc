// MoE layer throughput on one CUDA device, without MPI: forward + backward tokens/s of the
// expert-parallel MoE layer (experts/expert_parallel.h) at world size 1, its token exchange
// over the NCCL communicator (bootstrapped over a SelfCommunicator, as tests/cluster/nccl_test.cc
// does), of the same layer with no communicator (all experts local), and of a dense FFN of the
// same active size (hidden width k * 2D) on the same tokens; and, as the same run's
// "before", the local layer with one GEMM pair per expert. bench/gpu_check.sh runs it.
// Usage: moe_layer_gpu_bench [--tokens T] [--dim D] [--experts E] [--top_k K] [--iters I]
//                            [--warmup W] [--cpu_dry_run 1]
// --cpu_dry_run 1 runs the same sequence on the CPU with a SelfCommunicator in place of NCCL
// (to check the benchmark itself on a machine without a GPU). Exit status: 0 done, 2 no CUDA
// device (or bad flags), 1 a measurement failed (its error is printed; the others still run).
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <torch/autograd.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "cluster/comm/nccl_communicator.h"
#include "cluster/comm/self_communicator.h"
#include "experts/expert_parallel.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  int64_t tokens = 4096, dim = 128, experts = 16, top_k = 4, iters = 20, warmup = 5;
  bool cpu_dry_run = false;
};

// Parses --name value pairs; false (after printing why) on an unknown flag or a bad value.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "moe_layer_gpu_bench: %s needs a value\n", flag.c_str());
      return false;
    }
    int64_t value = 0;
    try {
      size_t used = 0;
      value = std::stoll(argv[i + 1], &used);
      if (used != std::string(argv[i + 1]).size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      std::fprintf(stderr, "moe_layer_gpu_bench: %s: not an integer: %s\n", flag.c_str(),
                   argv[i + 1]);
      return false;
    }
    if (flag == "--tokens") {
      flags->tokens = value;
    } else if (flag == "--dim") {
      flags->dim = value;
    } else if (flag == "--experts") {
      flags->experts = value;
    } else if (flag == "--top_k") {
      flags->top_k = value;
    } else if (flag == "--iters") {
      flags->iters = value;
    } else if (flag == "--warmup") {
      flags->warmup = value;
    } else if (flag == "--cpu_dry_run") {
      flags->cpu_dry_run = value != 0;
    } else {
      std::fprintf(stderr, "moe_layer_gpu_bench: unknown flag %s\n", flag.c_str());
      return false;
    }
  }
  if (flags->tokens < 1 || flags->dim < 1 || flags->experts < 1 || flags->top_k < 1 ||
      flags->top_k > flags->experts || flags->iters < 1 || flags->warmup < 0) {
    std::fprintf(stderr,
                 "moe_layer_gpu_bench: need tokens, dim, experts, iters >= 1, "
                 "1 <= top_k <= experts, warmup >= 0\n");
    return false;
  }
  return true;
}

// Why no CUDA device can be used, or "" when device 0 can.
std::string NoCudaReason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(status);
  }
  if (count == 0) return "cudaGetDeviceCount reports no device";
  if (!at::hasCUDA()) return "this LibTorch has no CUDA support (a CPU build)";
  if (!torch::cuda::is_available()) return "torch::cuda::is_available() is false";
  return "";
}

std::string DeviceName(bool cpu) {
  if (cpu) return "cpu (dry run)";
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "cuda:0";
  return std::string("cuda:0 ") + prop.name;
}

// What every timed variant shares: the flags and the device.
struct Bench {
  Flags f;
  at::Device device = at::kCPU;

  // Waits for the device's queued work (the CPU needs none).
  void Sync() const {
    if (!f.cpu_dry_run) torch::cuda::synchronize(0);
  }
  // Seconds per step (negative: failed, the error printed).
  double Time(const char* what, const std::function<void()>& step) const {
    try {
      for (int64_t i = 0; i < f.warmup; ++i) step();
      Sync();
      const auto start = Clock::now();
      for (int64_t i = 0; i < f.iters; ++i) step();
      Sync();
      return std::chrono::duration<double>(Clock::now() - start).count() / f.iters;
    } catch (const std::exception& e) {
      std::printf("%s: FAILED: %s\n", what, e.what());
      std::fflush(stdout);
      return -1.0;
    }
  }
};

// NCCL over one rank (a SelfCommunicator on the CPU dry run); null, with the error
// printed and kept in `error`, when it cannot be made.
std::unique_ptr<Communicator> MakeCommunicator(const Flags& f, SelfCommunicator& parent,
                                               std::string* error) {
  std::unique_ptr<Communicator> comm;
  try {
    if (f.cpu_dry_run) {
      comm = std::make_unique<SelfCommunicator>("world");
    } else {
      if (!NcclAvailable()) throw std::runtime_error("NcclAvailable() is false");
      comm = MakeNcclCommunicator(parent, 0, std::chrono::milliseconds(120000));
    }
    std::printf("communicator: %s, size %d\n", comm->backend(), comm->size());
  } catch (const std::exception& e) {
    *error = e.what();
    std::printf("communicator: FAILED to create: %s\n", e.what());
  }
  std::fflush(stdout);
  return comm;
}

struct Timings {
  double moe_s = -1, exchange_s = 0, local_s = -1, per_expert_s = -1, dense_s = -1;
};

// The layer's inputs and the dense FFN of the same active size: D -> k*2D -> D.
struct Inputs {
  at::Tensor x, noise, combination, w1, w2;
  Inputs(const Flags& f, const at::Device& device, int64_t hidden) {
    const auto on_device = at::TensorOptions().device(device);
    x = at::randn({f.tokens, f.dim}, on_device).requires_grad_(true);
    noise = at::randn({f.tokens, f.experts}, on_device);
    combination = at::zeros({f.tokens}, on_device.dtype(at::kLong));
    w1 = (at::randn({f.dim, hidden}, on_device) * 0.05).requires_grad_(true);
    w2 = (at::randn({hidden, f.dim}, on_device) * 0.05).requires_grad_(true);
  }
};

void TimeExpertParallel(const Bench& b, ExpertParallelMoe& moe, const Inputs& in,
                        Communicator* comm, const std::string& comm_error, Timings* t) {
  if (comm == nullptr) {
    std::printf("MoE (expert-parallel): skipped, no communicator (%s)\n", comm_error.c_str());
    return;
  }
  ExchangeStats stats;
  t->moe_s = b.Time("MoE (expert-parallel, NCCL)", [&] {
    MoeOutput out =
        moe->Forward(in.x, in.noise, in.combination, at::Tensor(), 1, true, comm, comm, &stats);
    (out.output.sum() + out.aux_loss).backward();
  });
  if (t->moe_s <= 0) return;
  const Flags& f = b.f;
  t->exchange_s = stats.seconds / static_cast<double>(f.warmup + f.iters);
  std::printf(
      "MoE layer (expert-parallel over %s): %.3f ms/step, %.0f tokens/s; exchange %.3f "
      "ms/step (host time in the communicator, waiting for queued kernels included); "
      "rows sent per step %ld\n",
      comm->backend(), 1e3 * t->moe_s, f.tokens / t->moe_s, 1e3 * t->exchange_s,
      stats.rows_sent / (f.warmup + f.iters));
}

void TimeLocal(const Bench& b, ExpertParallelMoe& moe, const Inputs& in, Timings* t) {
  const Flags& f = b.f;
  t->local_s = b.Time("MoE (local experts)", [&] {
    MoeOutput out =
        moe->Forward(in.x, in.noise, in.combination, at::Tensor(), 1, true, nullptr, nullptr);
    (out.output.sum() + out.aux_loss).backward();
  });
  if (t->local_s > 0) {
    std::printf("MoE layer (no communicator, experts local): %.3f ms/step, %.0f tokens/s\n",
                1e3 * t->local_s, f.tokens / t->local_s);
  }
  // The same layer with one GEMM pair per expert (GroupedExperts::ForwardPerExpert, the
  // path CUDA rows took before the padded batched GEMMs): the "before" of the same run.
  GroupedExpertsImpl& experts = *moe->experts();
  t->per_expert_s = b.Time("MoE (local experts, per-expert GEMMs)", [&] {
    MoeOutput out = RunMoe(
        *moe->router(),
        [&experts](const at::Tensor& rows, const std::vector<int64_t>& counts) {
          return experts.ForwardPerExpert(rows, counts);
        },
        RouterStatsReducer(), in.x, in.noise, in.combination, at::Tensor(), 1, true);
    (out.output.sum() + out.aux_loss).backward();
  });
  if (t->per_expert_s > 0) {
    std::printf(
        "MoE layer (experts local, one GEMM pair per expert): %.3f ms/step, %.0f tokens/s\n",
        1e3 * t->per_expert_s, f.tokens / t->per_expert_s);
  }
}

// The ratios and the last line, one JSON object; true when every variant ran.
bool PrintSummary(const Flags& f, const std::string& device_name, const Timings& t) {
  const bool ok = t.moe_s > 0 && t.local_s > 0 && t.dense_s > 0;
  if (ok) {
    std::printf(
        "MoE/dense time: %.2f (expert-parallel), %.2f (local), %.2f (local, per-expert GEMMs)\n",
        t.moe_s / t.dense_s, t.local_s / t.dense_s, t.per_expert_s / t.dense_s);
  }
  auto rate = [&](double s) { return s > 0 ? f.tokens / s : 0.0; };
  std::printf(
      "{\"bench\": \"moe_layer_gpu\", \"device\": \"%s\", \"ranks\": 1, \"tokens\": %ld, "
      "\"dim\": %ld, \"experts\": %ld, \"top_k\": %ld, \"iters\": %ld, \"ok\": %s, "
      "\"moe_ms\": %.4f, \"moe_exchange_ms\": %.4f, \"moe_tokens_per_s\": %.0f, "
      "\"moe_local_tokens_per_s\": %.0f, \"moe_per_expert_tokens_per_s\": %.0f, "
      "\"dense_tokens_per_s\": %.0f, \"moe_over_dense_time\": %.3f, "
      "\"local_over_dense_time\": %.3f}\n",
      device_name.c_str(), f.tokens, f.dim, f.experts, f.top_k, f.iters, ok ? "true" : "false",
      t.moe_s > 0 ? 1e3 * t.moe_s : 0.0, 1e3 * t.exchange_s, rate(t.moe_s), rate(t.local_s),
      rate(t.per_expert_s), rate(t.dense_s), ok ? t.moe_s / t.dense_s : 0.0,
      ok ? t.local_s / t.dense_s : 0.0);
  return ok;
}

int Main(int argc, char** argv) {
  Bench b;
  Flags& f = b.f;
  if (!ParseFlags(argc, argv, &f)) return 2;
  if (!f.cpu_dry_run) {
    const std::string reason = NoCudaReason();
    if (!reason.empty()) {
      std::printf("moe_layer_gpu_bench: no CUDA device available (%s); nothing measured\n",
                  reason.c_str());
      return 2;
    }
  }
  b.device = f.cpu_dry_run ? at::Device(at::kCPU) : at::Device(at::kCUDA, 0);
  const std::string device_name = DeviceName(f.cpu_dry_run);
  const int64_t hidden = f.top_k * 2 * f.dim;
  std::printf(
      "moe_layer_gpu_bench: device %s, world size 1, tokens %ld, D %ld, E %ld, k %ld, "
      "iters %ld (warmup %ld), float32\n",
      device_name.c_str(), f.tokens, f.dim, f.experts, f.top_k, f.iters, f.warmup);
  std::fflush(stdout);

  SelfCommunicator parent("world");
  std::string comm_error;
  const std::unique_ptr<Communicator> comm = MakeCommunicator(f, parent, &comm_error);
  at::manual_seed(0);
  ExpertParallelMoe moe(ExpertParallelMoeOptions{f.dim, f.experts, f.top_k, 1,
                                                 ExpertPlacement::Balanced(f.experts, 1), 0});
  moe->to(b.device);
  const Inputs in(f, b.device, hidden);
  Timings t;
  TimeExpertParallel(b, moe, in, comm.get(), comm_error, &t);
  TimeLocal(b, moe, in, &t);
  t.dense_s =
      b.Time("dense FFN", [&] { at::gelu(in.x.matmul(in.w1)).matmul(in.w2).sum().backward(); });
  if (t.dense_s > 0) {
    std::printf("dense FFN (hidden %ld): %.3f ms/step, %.0f tokens/s\n", hidden, 1e3 * t.dense_s,
                f.tokens / t.dense_s);
  }
  return PrintSummary(f, device_name, t) ? 0 : 1;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  try {
    return flexmoe::Main(argc, argv);
  } catch (const std::exception& e) {
    std::printf("moe_layer_gpu_bench: FAILED: %s\n", e.what());
    return 1;
  }
}
