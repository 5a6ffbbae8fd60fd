// NCCL backend at world size 1 (NCCL refuses two ranks on one GPU), bootstrapped over a
// SelfCommunicator: collectives, AllToAll splits and their validation, Split, and (in its own
// process, see tests/CMakeLists.txt) the deadline path. Skips without a CUDA device.
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "cluster/comm/nccl_communicator.h"
#include "cluster/comm/routed_communicator.h"
#include "cluster/comm/self_communicator.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;
using testing::kTestTimeout;

class NcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      GTEST_SKIP() << "no CUDA device";
    }
    if (!at::hasCUDA()) GTEST_SKIP() << "LibTorch without CUDA";
    ASSERT_TRUE(NcclAvailable());
    nccl_ = MakeNcclCommunicator(parent_, 0, kTestTimeout);
  }

  at::Tensor Cuda(const at::Tensor& t) const { return t.to(at::Device(at::kCUDA, 0)); }

  SelfCommunicator parent_{"world"};
  std::unique_ptr<Communicator> nccl_;
};

TEST_F(NcclTest, AllReduceBroadcastAllGatherBarrier) {
  EXPECT_STREQ(nccl_->backend(), "nccl");
  EXPECT_FALSE(nccl_->capabilities().host_tensors);
  EXPECT_TRUE(nccl_->capabilities().device_tensors);
  EXPECT_EQ(nccl_->name(), "world");
  EXPECT_EQ(nccl_->size(), 1);
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong, at::kInt, at::kHalf}) {
    at::Tensor t = Cuda(at::arange(100, at::kLong).to(dtype));
    nccl_->AllReduce(t, ReduceOp::kSum);
    EXPECT_TRUE(at::equal(t.cpu(), at::arange(100, at::kLong).to(dtype))) << dtype;
    nccl_->AllReduce(t, ReduceOp::kMax);
    nccl_->AllReduce(t, ReduceOp::kAverage);
    EXPECT_TRUE(at::equal(t.cpu(), at::arange(100, at::kLong).to(dtype))) << dtype;
  }
  at::Tensor base = Cuda(at::arange(12, at::kFloat).reshape({3, 4}));
  at::Tensor view = base.t();
  nccl_->AllReduce(view, ReduceOp::kSum);
  EXPECT_TRUE(at::equal(base.cpu(), at::arange(12, at::kFloat).reshape({3, 4})));
  at::Tensor b = Cuda(at::full({7}, 3.5));
  nccl_->Broadcast(b, 0);
  EXPECT_TRUE(at::equal(b.cpu(), at::full({7}, 3.5)));
  at::Tensor gathered = nccl_->AllGather(Cuda(at::arange(6, at::kFloat).reshape({2, 3})));
  EXPECT_TRUE(at::equal(gathered.cpu(), at::arange(6, at::kFloat).reshape({1, 2, 3})));
  nccl_->Barrier();
  EXPECT_EQ(nccl_->sequence(), 19u);
  ExpectError([&] { nccl_->Send(b, 0, 0); }, ErrorCode::kInvalidArgument, {"another rank"});
}

// A worker's routed world: CUDA tensors over NCCL, host tensors over the host group; and
// without a device group, CUDA tensors staged through the host.
TEST_F(NcclTest, RoutedWorldSendsCudaTensorsToNcclAndHostTensorsToTheHost) {
  SelfCommunicator host("world");
  RoutedCommunicator routed(host, std::move(nccl_));
  EXPECT_STREQ(routed.backend(), "self+nccl");
  at::Tensor device = Cuda(at::arange(8, at::kFloat));
  at::Tensor cpu = at::arange(8, at::kLong);
  routed.AllReduce(device, ReduceOp::kSum);
  routed.AllReduce(cpu, ReduceOp::kSum);
  EXPECT_STREQ(routed.GroupFor(device).backend(), "nccl");
  EXPECT_STREQ(routed.GroupFor(cpu).backend(), "self");
  EXPECT_EQ(host.sequence(), 1u);
  EXPECT_TRUE(at::equal(device.cpu(), at::arange(8, at::kFloat)));
  at::Tensor back = routed.AllToAll(device, {8}, {8});
  EXPECT_TRUE(back.is_cuda());
  RoutedCommunicator staged(host, nullptr);
  at::Tensor gathered = staged.AllGather(device);
  EXPECT_TRUE(gathered.is_cuda());
  EXPECT_TRUE(staged.Staged(device));
  EXPECT_TRUE(at::equal(gathered.cpu().view({8}), at::arange(8, at::kFloat)));
}

TEST_F(NcclTest, AllToAllWithSplitsAndValidation) {
  at::Tensor rows = Cuda(at::arange(40, at::kFloat).reshape({10, 4}));
  EXPECT_TRUE(at::equal(nccl_->AllToAll(rows, {10}, {10}).cpu(), rows.cpu()));
  EXPECT_EQ(nccl_->AllToAll(Cuda(at::empty({0, 4})), {0}, {0}).sizes(),
            (std::vector<int64_t>{0, 4}));
  ExpectError([&] { nccl_->AllToAll(rows, {9}, {9}); }, ErrorCode::kInvalidArgument,
              {"AllToAll on group world (seq 3): invalid splits: rank 0: send splits [9]"});
  ExpectError([&] { nccl_->AllToAll(rows, {10}, {11}); }, ErrorCode::kInvalidArgument,
              {"rank 0 expects 11 rows from rank 0, which sends 10"});
  ExpectError([&] { nccl_->AllToAll(rows.cpu(), {10}, {10}); }, ErrorCode::kInvalidArgument,
              {"rank 0: tensor is not on the communicator's device"});
  // Still usable after rejected splits.
  EXPECT_TRUE(at::equal(nccl_->AllToAll(rows, {10}, {10}).cpu(), rows.cpu()));
}

TEST_F(NcclTest, SplitMakesAWorkingSubgroup) {
  auto sub = nccl_->Split({0}, "sub");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->name(), "sub");
  at::Tensor t = Cuda(at::ones({5}));
  sub->AllReduce(t, ReduceOp::kSum);
  EXPECT_TRUE(at::equal(t.cpu(), at::ones({5})));
  EXPECT_EQ(nccl_->Split({}, "none"), nullptr);
}

void CUDART_CB SleepOnStream(void*) { std::this_thread::sleep_for(std::chrono::seconds(1)); }

// The legacy default stream is blocked for 1 s; the call waits for it and times out at 200 ms
// (not at the 30 s default), then aborts the communicator.
TEST_F(NcclTest, DeadlineAbortsTheCommunicator) {
  at::Tensor t = Cuda(at::ones({1024}));
  ASSERT_EQ(cudaLaunchHostFunc(cudaStreamLegacy, SleepOnStream, nullptr), cudaSuccess);
  CollectiveOptions options;
  options.timeout = std::chrono::milliseconds(200);
  ExpectError([&] { nccl_->AllReduce(t, ReduceOp::kSum, options); }, ErrorCode::kDeadlineExceeded,
              {"AllReduce on group world (seq 1) exceeded 0.2 s"});
  ExpectError([&] { nccl_->Barrier(); }, ErrorCode::kFailedPrecondition,
              {"Barrier on group world (seq 2)", "unusable"});
  cudaDeviceSynchronize();
}

}  // namespace
}  // namespace flexmoe
