// MoE layer throughput under mpirun: forward + backward tokens/s of the expert-parallel MoE
// layer (E experts sharded over the ranks, top-k routing, all-to-all exchange) against a
// dense FFN of the same active size (hidden width k * 2D) on the same tokens, per rank and
// in total. Usage: mpirun -np N moe_layer_bench [--tokens T] [--dim D] [--experts E]
//                  [--top_k K] [--iters I]
#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "cluster/base/error.h"
#include "cluster/comm/mpi_communicator.h"
#include "cluster/comm/mpi_session.h"
#include "experts/expert_parallel.h"
#include "trainer/train/compute_threads.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

int Main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  int64_t tokens = 4096, dim = 128, experts = 16, top_k = 4, iters = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int64_t value = std::stoll(argv[i + 1]);
    if (flag == "--tokens")
      tokens = value;
    else if (flag == "--dim")
      dim = value;
    else if (flag == "--experts")
      experts = value;
    else if (flag == "--top_k")
      top_k = value;
    else if (flag == "--iters")
      iters = value;
  }
  SetComputeThreads(1);
  auto world = MakeMpiWorld(std::chrono::milliseconds(120000));
  const int w = world->size(), me = world->rank();
  ExpertParallelMoe moe(
      ExpertParallelMoeOptions{dim, experts, top_k, 1, ExpertPlacement::Balanced(experts, w), me});
  at::manual_seed(me);
  at::Tensor x = at::randn({tokens, dim}).requires_grad_(true);
  at::Tensor noise = at::randn({tokens, experts});
  at::Tensor combination = at::zeros({tokens}, at::kLong);
  // Dense FFN with the active size of k experts: D -> k*2D -> D.
  at::Tensor w1 = (at::randn({dim, top_k * 2 * dim}) * 0.05).requires_grad_(true);
  at::Tensor w2 = (at::randn({top_k * 2 * dim, dim}) * 0.05).requires_grad_(true);

  auto time_it = [&](auto&& step) {
    for (int i = 0; i < 3; ++i) step();
    world->Barrier();
    auto start = Clock::now();
    for (int64_t i = 0; i < iters; ++i) step();
    world->Barrier();
    return std::chrono::duration<double>(Clock::now() - start).count() / iters;
  };
  ExchangeStats stats;
  double moe_s = time_it([&] {
    MoeOutput out = moe->Forward(x, noise, combination, at::Tensor(), 1, true, world.get(),
                                 world.get(), &stats);
    (out.output.sum() + out.aux_loss).backward();
  });
  stats = ExchangeStats();
  time_it([&] {
    MoeOutput out = moe->Forward(x, noise, combination, at::Tensor(), 1, true, world.get(),
                                 world.get(), &stats);
    (out.output.sum() + out.aux_loss).backward();
  });
  double exchange_s = stats.seconds / (iters + 3);
  double dense_s = time_it([&] { at::gelu(x.matmul(w1)).matmul(w2).sum().backward(); });
  if (me == 0) {
    std::printf(
        "ranks %d tokens/rank %ld D %ld E %ld k %ld: MoE %.2f ms/step (exchange %.2f ms), "
        "%.0f tokens/s/rank, %.0f tokens/s total; dense FFN (hidden %ld) %.2f ms, "
        "%.0f tokens/s/rank; MoE/dense time %.2f\n",
        w, tokens, dim, experts, top_k, 1e3 * moe_s, 1e3 * exchange_s, tokens / moe_s,
        w * tokens / moe_s, top_k * 2 * dim, 1e3 * dense_s, tokens / dense_s, moe_s / dense_s);
    std::printf(
        "{\"bench\": \"moe_layer\", \"ranks\": %d, \"tokens_per_rank\": %ld, \"dim\": %ld, "
        "\"moe_tokens_per_s_total\": %.0f, \"dense_tokens_per_s_per_rank\": %.0f}\n",
        w, tokens, dim, w * tokens / moe_s, tokens / dense_s);
  }
  return 0;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  return flexmoe::RunReportingErrors("moe_layer_bench", [&] { return flexmoe::Main(argc, argv); });
}
