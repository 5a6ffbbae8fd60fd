// Token exchange autograd functions, the expert-parallel expert step and layer.
#include "experts/expert_parallel.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>

#include "cluster/base/error.h"
#include "experts/host_index.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The communicator travels through the autograd context as an integer: the function
// object lives only for one forward/backward pair, within the communicator's lifetime.
int64_t Pack(Communicator* comm) { return reinterpret_cast<int64_t>(comm); }
Communicator* Unpack(const c10::IValue& value) {
  return reinterpret_cast<Communicator*>(value.toInt());
}

// The exchange's splits come from counts every rank all-gathered just before (and the
// backward's are the forward's, swapped): agreed by construction, so the communicator may
// skip its own split exchange (CollectiveOptions::splits_agreed).
CollectiveOptions AgreedSplits() {
  CollectiveOptions options;
  options.splits_agreed = true;
  return options;
}

// Adds the scope's duration to stats->seconds (when stats is not null).
class ExchangeTimer {
 public:
  explicit ExchangeTimer(ExchangeStats* stats)
      : stats_(stats), start_(std::chrono::steady_clock::now()) {}
  ~ExchangeTimer() {
    if (stats_ != nullptr) {
      stats_->seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
  }
  ExchangeTimer(const ExchangeTimer&) = delete;
  ExchangeTimer& operator=(const ExchangeTimer&) = delete;

 private:
  ExchangeStats* stats_;
  std::chrono::steady_clock::time_point start_;
};

class AllReduceSumFunction : public torch::autograd::Function<AllReduceSumFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t comm,
                            int64_t stats) {
    ExchangeTimer timer(reinterpret_cast<ExchangeStats*>(stats));
    ctx->saved_data["comm"] = comm;
    ctx->saved_data["stats"] = stats;
    at::Tensor y = x.detach().clone().contiguous();
    reinterpret_cast<Communicator*>(comm)->AllReduce(y, ReduceOp::kSum);
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    ExchangeTimer timer(reinterpret_cast<ExchangeStats*>(ctx->saved_data["stats"].toInt()));
    at::Tensor g = grads[0].contiguous().clone();
    Unpack(ctx->saved_data["comm"])->AllReduce(g, ReduceOp::kSum);
    return {g, at::Tensor(), at::Tensor()};
  }
};

// The sum of AllReduceSumWithGrad for replicated consumers (expert_parallel.h).
class AllReduceSumReplicatedFunction
    : public torch::autograd::Function<AllReduceSumReplicatedFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t comm,
                            int64_t stats) {
    ExchangeTimer timer(reinterpret_cast<ExchangeStats*>(stats));
    Communicator* group = reinterpret_cast<Communicator*>(comm);
    ctx->saved_data["size"] = static_cast<int64_t>(group->size());
    at::Tensor y = x.detach().clone().contiguous();
    group->AllReduce(y, ReduceOp::kSum);
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // Every rank holds the same upstream gradient: their sum is size x this one.
    const double size = static_cast<double>(ctx->saved_data["size"].toInt());
    return {grads[0] * size, at::Tensor(), at::Tensor()};
  }
};

// Rows over the wire as `wire` (a float tensor sent as bfloat16 arrives rounded to it and
// widened back to its own type); the bytes this rank sends to other ranks go to `stats`.
at::Tensor MoveRows(const at::Tensor& x, const std::vector<int64_t>& send,
                    const std::vector<int64_t>& recv, Communicator& comm, ExchangeStats* stats,
                    at::ScalarType wire) {
  const bool narrow = wire != x.scalar_type();
  const at::Tensor sent = narrow ? x.to(wire) : x;
  if (stats != nullptr && sent.dim() > 0 && sent.size(0) > 0) {
    int64_t rows = 0;
    for (size_t r = 0; r < send.size(); ++r) {
      if (static_cast<int>(r) != comm.rank()) rows += send[r];
    }
    stats->token_bytes_sent += rows * (sent.numel() / sent.size(0)) * sent.element_size();
  }
  at::Tensor received = comm.AllToAll(sent, send, recv, AgreedSplits());
  return narrow ? received.to(x.scalar_type()) : received;
}

class AllToAllFunction : public torch::autograd::Function<AllToAllFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, std::vector<int64_t> send,
                            std::vector<int64_t> recv, int64_t comm, int64_t stats, int64_t wire) {
    ExchangeTimer timer(reinterpret_cast<ExchangeStats*>(stats));
    ctx->saved_data["send"] = send;
    ctx->saved_data["recv"] = recv;
    ctx->saved_data["comm"] = comm;
    ctx->saved_data["stats"] = stats;
    ctx->saved_data["wire"] = wire;
    return MoveRows(x.detach().contiguous(), send, recv, *Unpack(comm),
                    reinterpret_cast<ExchangeStats*>(stats), static_cast<at::ScalarType>(wire));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    ExchangeStats* stats = reinterpret_cast<ExchangeStats*>(ctx->saved_data["stats"].toInt());
    ExchangeTimer timer(stats);
    std::vector<int64_t> send = ctx->saved_data["send"].toIntVector();
    std::vector<int64_t> recv = ctx->saved_data["recv"].toIntVector();
    at::Tensor g = MoveRows(grads[0].contiguous(), recv, send, *Unpack(ctx->saved_data["comm"]),
                            stats, static_cast<at::ScalarType>(ctx->saved_data["wire"].toInt()));
    return {g, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor AllReduceSumWithGrad(const at::Tensor& x, Communicator& comm, ExchangeStats* stats) {
  return AllReduceSumFunction::apply(x, Pack(&comm), reinterpret_cast<int64_t>(stats));
}

at::Tensor AllReduceSumReplicatedGrad(const at::Tensor& x, Communicator& comm,
                                      ExchangeStats* stats) {
  return AllReduceSumReplicatedFunction::apply(x, Pack(&comm), reinterpret_cast<int64_t>(stats));
}

at::Tensor AllToAllWithGrad(const at::Tensor& x, const std::vector<int64_t>& send_splits,
                            const std::vector<int64_t>& recv_splits, Communicator& comm,
                            ExchangeStats* stats, bool bf16_wire) {
  const bool narrow = bf16_wire && x.scalar_type() == at::kFloat;
  const at::ScalarType wire = narrow ? at::kBFloat16 : x.scalar_type();
  return AllToAllFunction::apply(x, send_splits, recv_splits, Pack(&comm),
                                 reinterpret_cast<int64_t>(stats), static_cast<int64_t>(wire));
}

std::vector<int64_t> OwnerMajorOrder(const ExpertPlacement& placement) {
  std::vector<int64_t> order(placement.num_experts());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return placement.owner[a] < placement.owner[b]; });
  return order;
}

ExpertStep MakeExpertParallelStep(GroupedExpertsImpl& local, const ExpertPlacement& placement,
                                  Communicator& ep, ExchangeStats* stats,
                                  const std::vector<int64_t>& expert_order, bool bf16_wire) {
  return MakeExchangeStep(
      [&local](const at::Tensor& rows, const std::vector<RowBlock>& blocks) {
        return local.ForwardBlocks(rows, blocks);
      },
      placement, ep, stats, expert_order, bf16_wire);
}

ExpertStep MakeExpertParallelStep(ExpertStep local_step, const ExpertPlacement& placement,
                                  Communicator& ep, ExchangeStats* stats,
                                  const std::vector<int64_t>& expert_order) {
  // The received rows regrouped expert-major for `local_step`, and its outputs put back.
  auto regrouped = [local_step](const at::Tensor& rows, const std::vector<RowBlock>& blocks) {
    int64_t experts = 0;
    for (const RowBlock& b : blocks) experts = std::max(experts, b.expert + 1);
    std::vector<int64_t> counts;
    const at::Tensor order = GatherIndex(ExpertMajorRanges(blocks, experts, &counts), rows.size(0));
    const at::Device device = rows.device();
    const at::Tensor y = local_step(rows.index_select(0, HostIndexTo(order, device)), counts);
    return y.index_select(0, HostIndexTo(InverseIndex(order), device));
  };
  return MakeExchangeStep(regrouped, placement, ep, stats, expert_order);
}

namespace {

// Phase 1 of an exchange: where each expert's rows start in the dispatch order, and the
// blocks (and rows) each owner gets.
struct SendPlan {
  std::vector<std::vector<int64_t>> experts_of;  // per rank: its experts, ascending
  RowRanges blocks;                              // owner-major
  std::vector<int64_t> send;                     // rows per rank
  int64_t total = 0;
};

SendPlan PlanSends(const ExpertPlacement& placement, const std::vector<int64_t>& counts,
                   const std::vector<int64_t>& expert_order, int world) {
  const int64_t e_count = placement.num_experts();
  std::vector<int64_t> offset(e_count, 0);
  SendPlan plan;
  for (size_t i = 0; i < static_cast<size_t>(e_count); ++i) {
    const int64_t e = expert_order.empty() ? static_cast<int64_t>(i) : expert_order[i];
    offset[e] = plan.total;
    plan.total += counts[e];
  }
  plan.experts_of.resize(world);
  for (int64_t e = 0; e < e_count; ++e) plan.experts_of[placement.owner[e]].push_back(e);
  plan.send.assign(world, 0);
  for (int r = 0; r < world; ++r) {
    for (int64_t e : plan.experts_of[r]) {
      plan.blocks.push_back({offset[e], counts[e]});
      plan.send[r] += counts[e];
    }
  }
  return plan;
}

// Phase 2: every rank's rows per expert, [world, E] on the host. The counts are host values:
// a group that takes host tensors (MPI, or a routed world's host side) gets them as they
// are; a group that takes only device tensors (NCCL) gets them on the rows' device.
at::Tensor GatherCounts(const std::vector<int64_t>& counts, Communicator& ep, at::Device device,
                        ExchangeStats* stats) {
  at::Tensor my_counts = at::tensor(counts, at::kLong);
  if (!ep.capabilities().host_tensors) my_counts = my_counts.to(device);
  at::Tensor all_counts;
  {
    ExchangeTimer timer(stats);
    all_counts = ep.AllGather(my_counts).to(at::kCPU).contiguous();
  }
  if (stats != nullptr) {
    const int64_t e_count = static_cast<int64_t>(counts.size());
    const int64_t* all = all_counts.data_ptr<int64_t>();
    stats->expert_rows.resize(e_count, 0);
    for (int64_t s = 0; s < all_counts.size(0); ++s) {
      for (int64_t e = 0; e < e_count; ++e) stats->expert_rows[e] += all[s * e_count + e];
    }
  }
  return all_counts;
}

// Phase 3: the received rows arrive source-major, each source's rows ordered by local
// expert: one block per (source, local expert). `*rows`: their total.
std::vector<RowBlock> ReceivedBlocks(const int64_t* all, int64_t e_count, int world,
                                     const std::vector<int64_t>& mine, int64_t* rows) {
  std::vector<RowBlock> blocks;
  int64_t position = 0;
  for (int s = 0; s < world; ++s) {
    for (size_t j = 0; j < mine.size(); ++j) {
      const int64_t n = all[s * e_count + mine[j]];
      blocks.push_back({static_cast<int64_t>(j), position, n});
      position += n;
    }
  }
  *rows = position;
  return blocks;
}

}  // namespace

ExpertStep MakeExchangeStep(ReceivedRowsStep local, const ExpertPlacement& placement,
                            Communicator& ep, ExchangeStats* stats,
                            std::vector<int64_t> expert_order, bool bf16_wire) {
  if (!expert_order.empty() &&
      static_cast<int64_t>(expert_order.size()) != placement.num_experts()) {
    Fail(ErrorCode::kInvalidArgument, "expert step: a dispatch order of ", expert_order.size(),
         " experts for a placement of ", placement.num_experts());
  }
  return [local, &placement, &ep, stats, expert_order, bf16_wire](
             const at::Tensor& rows, const std::vector<int64_t>& counts) {
    const int world = ep.size(), me = ep.rank();
    const int64_t e_count = placement.num_experts();
    if (static_cast<int64_t>(counts.size()) != e_count) {
      Fail(ErrorCode::kInvalidArgument, "expert step: ", counts.size(), " counts for ", e_count,
           " experts");
    }
    const SendPlan plan = PlanSends(placement, counts, expert_order, world);
    // Index bookkeeping is done on the CPU; the indices go to the rows' device (CUDA rows
    // with the NCCL backend) before use. Rows laid out owner by owner (OwnerMajorOrder, what
    // the expert-parallel layer dispatches in) stay where they are: no gather here and none
    // on the way back.
    const at::Device device = rows.device();
    const bool in_place = InOrder(plan.blocks);
    at::Tensor owner_order = in_place ? at::Tensor() : GatherIndex(plan.blocks, plan.total);
    at::Tensor by_owner = in_place ? rows : rows.index_select(0, HostIndexTo(owner_order, device));

    const at::Tensor all_counts = GatherCounts(counts, ep, device, stats);
    const int64_t* all = all_counts.data_ptr<int64_t>();
    const std::vector<int64_t>& mine = plan.experts_of[me];
    std::vector<int64_t> recv(world, 0);
    for (int s = 0; s < world; ++s) {
      for (int64_t e : mine) recv[s] += all[s * e_count + e];
    }
    // Rows to their owners, run where they lie, back to the senders and to the dispatch order.
    at::Tensor received = AllToAllWithGrad(by_owner, plan.send, recv, ep, stats, bf16_wire);
    int64_t received_rows = 0;
    at::Tensor y = local(received, ReceivedBlocks(all, e_count, world, mine, &received_rows));
    at::Tensor returned = AllToAllWithGrad(y, recv, plan.send, ep, stats, bf16_wire);
    if (stats != nullptr) {
      stats->rows_sent += plan.total;
      stats->rows_received += received_rows;
    }
    if (in_place) return returned;
    return returned.index_select(0, HostIndexTo(InverseIndex(owner_order), device));
  };
}

RouterStatsReducer MakeRouterStatsReducer(Communicator& dp, ExchangeStats* exchange) {
  return [&dp, exchange](RouterLossStats stats) {
    // One all-reduce for all six statistics: flattened, concatenated, split back.
    std::vector<at::Tensor*> parts = {
        &stats.full_importance, &stats.full_load, &stats.nonfull_importance,
        &stats.nonfull_load,    &stats.ce_sum,    &stats.num_nonfull};
    std::vector<at::Tensor> flat;
    std::vector<int64_t> sizes;
    for (at::Tensor* p : parts) {
      flat.push_back(p->reshape({-1}));
      sizes.push_back(p->numel());
    }
    // Every rank forms the same router loss from these sums (weighted 1/W, NOTE [gradient
    // scaling rule]), so the backward needs no all-reduce of its own.
    at::Tensor summed = AllReduceSumReplicatedGrad(at::cat(flat), dp, exchange);
    std::vector<at::Tensor> pieces = summed.split_with_sizes(sizes);
    for (size_t i = 0; i < parts.size(); ++i) *parts[i] = pieces[i].view(parts[i]->sizes());
    return stats;
  };
}

ExpertParallelMoeImpl::ExpertParallelMoeImpl(ExpertParallelMoeOptions options)
    : options_(std::move(options)) {
  router_ = register_module("router",
                            NoisyTopKRouter(RouterOptions{options_.hidden_dim, options_.num_experts,
                                                          options_.top_k, options_.init_seed}));
  GroupedExpertsOptions expert_options;
  expert_options.hidden_dim = options_.hidden_dim;
  expert_options.num_experts = options_.num_experts;
  expert_options.init_seed = options_.init_seed;
  expert_options.precision = options_.precision;
  if (!options_.placement.owner.empty()) {
    if (options_.placement.num_experts() != options_.num_experts) {
      Fail(ErrorCode::kInvalidArgument, "expert placement names ", options_.placement.num_experts(),
           " experts, the layer has ", options_.num_experts);
    }
    expert_options.global_ids = options_.placement.LocalExperts(options_.rank);
    if (expert_options.global_ids.empty()) {
      Fail(ErrorCode::kInvalidArgument, "expert placement: rank ", options_.rank,
           " owns no expert; an expert-parallel group needs at most as many ranks as experts (",
           options_.num_experts, ")");
    }
  }
  experts_ = register_module("experts", GroupedExperts(expert_options));
}

MoeOutput ExpertParallelMoeImpl::Forward(const at::Tensor& x, const at::Tensor& noise,
                                         const at::Tensor& token_combination,
                                         const at::Tensor& block_of_token, int64_t num_blocks,
                                         bool training, Communicator* ep, Communicator* dp,
                                         ExchangeStats* stats, const CapacityOptions& capacity,
                                         double* expert_seconds) {
  RouterStatsReducer reducer;
  if (dp != nullptr && dp->size() > 1) reducer = MakeRouterStatsReducer(*dp, stats);
  GroupedExpertsImpl& experts = *experts_;
  ExpertStep step;
  std::vector<int64_t> order;  // the rows' dispatch order: owner by owner when sharded
  if (ep != nullptr && !options_.placement.owner.empty()) {
    options_.placement.Check(ep->size());
    order = OwnerMajorOrder(options_.placement);
    step = MakeExpertParallelStep(experts, options_.placement, *ep, stats, order,
                                  options_.precision == GemmPrecision::kBf16);
  } else {
    step = [&experts](const at::Tensor& rows, const std::vector<int64_t>& counts) {
      return experts.Forward(rows, counts);
    };
  }
  if (expert_seconds != nullptr) {
    step = [step, expert_seconds](const at::Tensor& rows, const std::vector<int64_t>& counts) {
      const auto start = std::chrono::steady_clock::now();
      at::Tensor result = step(rows, counts);
      *expert_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return result;
    };
  }
  return RunMoe(*router_, step, reducer, x, noise, token_combination, block_of_token, num_blocks,
                training, capacity, order);
}

}  // namespace flexmoe
