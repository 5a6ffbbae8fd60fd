// The single-rank Communicator: local copies with the same argument checks as the backends.
#include "cluster/comm/self_communicator.h"

#include <ATen/ATen.h>

#include "cluster/base/error.h"
#include "cluster/comm/deadline.h"
#include "cluster/comm/split_check.h"

namespace flexmoe {
namespace {

void CheckDefined(const at::Tensor& tensor, const std::string& what) {
  if (!tensor.defined()) Fail(ErrorCode::kInvalidArgument, what, ": undefined tensor");
}

}  // namespace

std::string SelfCommunicator::Begin(const char* op) { return DescribeCall(op, name_, ++seq_); }

void SelfCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op, const CollectiveOptions&) {
  const std::string what = Begin("AllReduce");
  CheckDefined(tensor, what);
  if (tensor.scalar_type() == at::kBool && op == ReduceOp::kAverage) {
    Fail(ErrorCode::kInvalidArgument, what, ": kAverage of a bool tensor");
  }
  // The sum, the average and the max over one rank are the tensor itself.
}

void SelfCommunicator::Broadcast(at::Tensor& tensor, int root, const CollectiveOptions&) {
  const std::string what = Begin("Broadcast");
  CheckDefined(tensor, what);
  if (root != 0) {
    Fail(ErrorCode::kInvalidArgument, what, ": root ", root, " is not a rank of a group of 1");
  }
}

at::Tensor SelfCommunicator::AllGather(const at::Tensor& tensor, const CollectiveOptions&) {
  const std::string what = Begin("AllGather");
  CheckDefined(tensor, what);
  return tensor.unsqueeze(0).clone(at::MemoryFormat::Contiguous);
}

at::Tensor SelfCommunicator::AllToAll(const at::Tensor& input,
                                      const std::vector<int64_t>& send_splits,
                                      const std::vector<int64_t>& recv_splits,
                                      const CollectiveOptions&) {
  const std::string what = Begin("AllToAll");
  CheckDefined(input, what);
  const std::vector<int64_t> record =
      MakeSplitRecord(input, send_splits, recv_splits, 1, SplitProblem::kNone);
  CheckSplitRecords(record, 1, 0, INT64_MAX, what);
  return input.clone(at::MemoryFormat::Contiguous);
}

void SelfCommunicator::Barrier(const CollectiveOptions&) { Begin("Barrier"); }

void SelfCommunicator::Send(const at::Tensor&, int peer, int tag, const CollectiveOptions&) {
  Fail(ErrorCode::kInvalidArgument,
       DescribeCall("Send to rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")",
                    name_, seq_),
       ": a group of 1 has no other rank");
}

void SelfCommunicator::Recv(at::Tensor&, int peer, int tag, const CollectiveOptions&) {
  Fail(ErrorCode::kInvalidArgument,
       DescribeCall("Recv from rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")",
                    name_, seq_),
       ": a group of 1 has no other rank");
}

std::unique_ptr<Communicator> SelfCommunicator::Split(const std::vector<int>& ranks,
                                                      const std::string& name) {
  const std::string what = Begin("Split");
  if (ranks.empty()) return nullptr;
  if (ranks.size() != 1 || ranks[0] != 0) {
    Fail(ErrorCode::kInvalidArgument, what, ": a group of 1 splits only into {0} or {}");
  }
  return std::make_unique<SelfCommunicator>(name);
}

}  // namespace flexmoe
