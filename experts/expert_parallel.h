// Expert parallelism: experts placed on the ranks of an expert-parallel group by a
// placement map, tokens exchanged with all-to-all (counts first, then rows) and back, each
// exchange an autograd function whose backward runs the reverse exchange; the router's
// batch statistics summed over the data-parallel group with gradients flowing through.
//
// NOTE [collective symmetry]: every rank issues the same collectives in the same order on
// every step: one all-gather of counts and two all-to-alls per sparse layer forward (two
// more in backward), and one all-reduce of the router statistics, whether or not the
// rank has tokens, and whatever its experts receive. Nothing here branches on local data
// before a collective (guard the output, never the collective).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "cluster/base/expert_placement.h"
#include "cluster/comm/communicator.h"
#include "experts/grouped_experts.h"
#include "experts/moe_layer.h"
#include "experts/router.h"

namespace flexmoe {

// y = x summed over the group (every rank gets the sum); backward sums the gradients over
// the group the same way (the gradient of sum_r f_r(y) with respect to x on each rank).
struct ExchangeStats;
at::Tensor AllReduceSumWithGrad(const at::Tensor& x, Communicator& comm,
                                ExchangeStats* stats = nullptr);

// The same sum where every rank of the group computes the same function of y and its
// loss takes 1/W of it (the router loss from the summed router statistics): the upstream
// gradient is then equal on every rank, so their sum is the group's size times the local
// one, and the backward scales instead of reducing (one collective less per step).
at::Tensor AllReduceSumReplicatedGrad(const at::Tensor& x, Communicator& comm,
                                      ExchangeStats* stats = nullptr);

// Rows exchanged as Communicator::AllToAll does; backward sends the gradients back with
// the splits swapped. `bf16_wire`: float rows (and their gradients) travel rounded to
// bfloat16 (half the bytes) and arrive widened back to float; other types travel as they are.
at::Tensor AllToAllWithGrad(const at::Tensor& x, const std::vector<int64_t>& send_splits,
                            const std::vector<int64_t>& recv_splits, Communicator& comm,
                            ExchangeStats* stats = nullptr, bool bf16_wire = false);

// Statistics of the exchanges, accumulated; for the step-time split and the metrics.
struct ExchangeStats {
  int64_t rows_sent = 0;      // rows this rank sent to experts (its own included)
  int64_t rows_received = 0;  // rows this rank's experts processed
  // Bytes of rows (and their gradients) this rank sent to other ranks in the token
  // all-to-alls, forward and backward.
  int64_t token_bytes_sent = 0;
  // In the exchanges (token all-to-alls, counts, router statistics), forward and backward:
  // waiting for slower ranks included.
  double seconds = 0;
  // Rows sent to each global expert by the whole expert-parallel group, over every sparse
  // layer (the same on every rank of the group): the measured load of each expert.
  std::vector<int64_t> expert_rows;
};

// The experts owner by owner (rank 0's, then rank 1's, ...; ascending ids within a rank): the
// dispatch order (RunMoe's expert_order) in which every owner's rows form one block, so
// that the exchange sends them where they lie.
std::vector<int64_t> OwnerMajorOrder(const ExpertPlacement& placement);

// Runs this rank's experts on the rows it received: `blocks` come source-major (each source
// rank in order, its rows of each local expert by ascending global id; RowBlock::expert is
// the local index), and the outputs go back in the rows' order.
using ReceivedRowsStep =
    std::function<at::Tensor(const at::Tensor& rows, const std::vector<RowBlock>& blocks)>;

// The expert step of RunMoe for experts spread over `ep` by `placement`: rows grouped by
// expert in `expert_order` (RunMoe's; empty: ascending ids), counts [E] by expert id, go
// to their owners, run there on `local`, and come back in the same order. Dispatched in
// OwnerMajorOrder(placement), the rows move without a copy on either side. `bf16_wire`:
// the rows and their gradients travel as bfloat16 (AllToAllWithGrad).
ExpertStep MakeExchangeStep(ReceivedRowsStep local, const ExpertPlacement& placement,
                            Communicator& ep, ExchangeStats* stats,
                            std::vector<int64_t> expert_order = {}, bool bf16_wire = false);

// The exchange step around `local` (holding this rank's experts, ascending), which runs
// the received blocks where they lie (GroupedExperts::ForwardBlocks).
ExpertStep MakeExpertParallelStep(GroupedExpertsImpl& local, const ExpertPlacement& placement,
                                  Communicator& ep, ExchangeStats* stats,
                                  const std::vector<int64_t>& expert_order = {},
                                  bool bf16_wire = false);

// The same around any local step: `local_step` gets the rows this rank's experts received,
// grouped by local expert (ascending global id), with one count per local expert; they are
// regrouped for it and put back.
ExpertStep MakeExpertParallelStep(ExpertStep local_step, const ExpertPlacement& placement,
                                  Communicator& ep, ExchangeStats* stats,
                                  const std::vector<int64_t>& expert_order = {});

// A RouterStatsReducer summing the router statistics over `dp` (one all-reduce, timed into
// `stats` when not null).
RouterStatsReducer MakeRouterStatsReducer(Communicator& dp, ExchangeStats* stats = nullptr);

struct ExpertParallelMoeOptions {
  int64_t hidden_dim = 0;
  int64_t num_experts = 0;
  int64_t top_k = 0;
  int64_t init_seed = -1;
  ExpertPlacement placement;  // empty owner list: all experts local
  int rank = 0;               // this rank in the expert-parallel group
  // kBf16: the experts' products in bf16 (GroupedExpertsOptions::precision) and the token
  // all-to-alls in bf16 (MakeExchangeStep's bf16_wire). The router stays fp32.
  GemmPrecision precision = GemmPrecision::kFp32;
};

// The sparse layer of a worker: the replicated router and this rank's experts
// (submodules "router" and "experts", as LocalMoeLayer's). With no communicators (or a
// group of one) it computes exactly what LocalMoeLayer computes.
class ExpertParallelMoeImpl : public torch::nn::Module {
 public:
  explicit ExpertParallelMoeImpl(ExpertParallelMoeOptions options);

  // ep: the expert-parallel group (null: all experts local). dp: the group over which the
  // router statistics are summed (null: none). Arguments as LocalMoeLayer::Forward, plus
  // RunMoe's capacity; `stats` (may be null) accumulates the exchanges, and
  // `expert_seconds` (may be null) the time in the expert step, exchanges included.
  MoeOutput Forward(const at::Tensor& x, const at::Tensor& noise,
                    const at::Tensor& token_combination, const at::Tensor& block_of_token,
                    int64_t num_blocks, bool training, Communicator* ep, Communicator* dp,
                    ExchangeStats* stats = nullptr, const CapacityOptions& capacity = {},
                    double* expert_seconds = nullptr);

  NoisyTopKRouter& router() { return router_; }
  GroupedExperts& experts() { return experts_; }
  const ExpertPlacement& placement() const { return options_.placement; }

 private:
  ExpertParallelMoeOptions options_;
  NoisyTopKRouter router_{nullptr};
  GroupedExperts experts_{nullptr};
};
TORCH_MODULE(ExpertParallelMoe);

}  // namespace flexmoe
