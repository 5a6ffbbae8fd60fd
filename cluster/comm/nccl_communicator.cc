// The NCCL backend of Communicator: NCCL operations on the communicator's own CUDA stream,
// waited for by polling an event and the communicator's async error against deadlines. Uses
// only the CUDA runtime C API and NCCL's C API (no ATen CUDA headers), with raw pointers.
#include "cluster/comm/nccl_communicator.h"

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "cluster/base/error.h"
#include "cluster/comm/deadline.h"
#include "cluster/comm/split_check.h"

namespace flexmoe {
namespace {

bool NcclType(at::ScalarType dtype, ncclDataType_t* type) {
  switch (dtype) {
    case at::kFloat:
      *type = ncclFloat32;
      return true;
    case at::kDouble:
      *type = ncclFloat64;
      return true;
    case at::kHalf:
      *type = ncclFloat16;
      return true;
    case at::kBFloat16:
      *type = ncclBfloat16;
      return true;
    case at::kLong:
      *type = ncclInt64;
      return true;
    case at::kInt:
      *type = ncclInt32;
      return true;
    case at::kChar:
      *type = ncclInt8;
      return true;
    case at::kByte:
    case at::kBool:
      *type = ncclUint8;
      return true;
    default:
      return false;
  }
}

ErrorCode CodeFor(ncclResult_t result) {
  switch (result) {
    case ncclInvalidArgument:
    case ncclInvalidUsage:
      return ErrorCode::kInvalidArgument;
    case ncclSystemError:
    case ncclRemoteError:
      return ErrorCode::kUnavailable;
    default:
      return ErrorCode::kInternal;
  }
}

// Makes `device` current for a scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device_) cudaSetDevice(device_);
  }
  ~DeviceGuard() {
    if (previous_ >= 0 && previous_ != device_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_;
  int previous_ = -1;
};

// Polls a non-blocking communicator until its last call finished. Returns its final state
// (ncclSuccess or an error), or ncclInProgress when `deadline` passed first.
ncclResult_t PollComm(ncclComm_t comm, const Deadline& deadline) {
  PollPacer pacer;
  while (true) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t rc = ncclCommGetAsyncError(comm, &state);
    if (rc != ncclSuccess) return rc;
    if (state != ncclInProgress) return state;
    if (deadline.Passed()) return ncclInProgress;
    pacer.Pause();
  }
}

ncclConfig_t NonBlockingConfig() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

}  // namespace

struct NcclCommunicator::State {
  State(int device, std::chrono::milliseconds shutdown_timeout)
      : device(device), shutdown_timeout(shutdown_timeout) {}
  ~State();

  // Creates the stream and events on `device` (comm is set by Init).
  void CreateStreams(const std::string& what);
  // Creates `comm` as rank `rank` of `nranks` from `id` (non-blocking, waited out until
  // `deadline`).
  void Init(int nranks, const ncclUniqueId& id, int rank, const std::string& what,
            const Deadline& deadline);
  void CheckUsable(const std::string& what) const {
    if (!broken.empty()) FailUnusable(what, broken);
  }
  // Aborts the communicator, keeps `buffers` alive for good, marks the group unusable, throws.
  [[noreturn]] void Fatal(ErrorCode code, const std::string& message,
                          std::vector<at::Tensor> buffers = {});
  void CheckCuda(cudaError_t rc, const std::string& what) {
    if (rc != cudaSuccess) Fatal(ErrorCode::kInternal, what + ": CUDA " + cudaGetErrorString(rc));
  }
  // Accepts ncclSuccess; waits out ncclInProgress (non-blocking mode); fails on errors.
  void CheckNccl(ncclResult_t rc, const std::string& what, const Deadline& deadline,
                 const std::vector<at::Tensor>& buffers = {});
  std::string NcclError(ncclResult_t rc, const std::string& what) const {
    return what + ": NCCL " + ncclGetErrorString(rc) + " (" + (comm ? ncclGetLastError(comm) : "") +
           ")";
  }
  // Orders the stream after the work queued so far on the legacy default stream.
  void OrderAfterInputs(const std::string& what);
  // Records `done` and waits for it, for NCCL errors, or for the deadline.
  void Finish(const std::string& what, const Deadline& deadline, std::vector<at::Tensor> buffers);
  // All-gathers `mine` (same length on every rank) through the staging buffers.
  std::vector<int64_t> GatherInt64(const std::vector<int64_t>& mine, int size,
                                   const std::string& what, const Deadline& deadline);

  ncclComm_t comm = nullptr;
  int device = 0;
  std::chrono::milliseconds shutdown_timeout;
  cudaStream_t stream = nullptr;
  cudaEvent_t inputs_ready = nullptr;
  cudaEvent_t done = nullptr;
  void* device_staging = nullptr;  // split records and barrier words
  void* host_staging = nullptr;    // pinned, so copies stay asynchronous
  size_t staging_bytes = 0;
  std::string broken;
  bool leak_buffers = false;
  std::vector<at::Tensor> parked;
};

NcclCommunicator::State::~State() {
  DeviceGuard guard(device);
  if (comm != nullptr) {
    // Flush outstanding work, then free; abort if that does not finish in time.
    const ncclResult_t rc = ncclCommFinalize(comm);
    bool clean = rc == ncclSuccess || rc == ncclInProgress;
    if (clean) clean = PollComm(comm, Deadline(shutdown_timeout)) == ncclSuccess;
    if (clean) {
      ncclCommDestroy(comm);
    } else {
      ncclCommAbort(comm);
    }
  }
  if (leak_buffers) {
    // An aborted operation may still be queued on the stream: its memory stays allocated.
    std::fprintf(stderr, "flexmoe: NCCL group destroyed after an abort; keeping its buffers\n");
    static_cast<void>(new std::vector<at::Tensor>(std::move(parked)));
    return;
  }
  if (stream != nullptr) cudaStreamSynchronize(stream);
  if (inputs_ready != nullptr) cudaEventDestroy(inputs_ready);
  if (done != nullptr) cudaEventDestroy(done);
  if (stream != nullptr) cudaStreamDestroy(stream);
  if (device_staging != nullptr) cudaFree(device_staging);
  if (host_staging != nullptr) cudaFreeHost(host_staging);
}

void NcclCommunicator::State::CreateStreams(const std::string& what) {
  DeviceGuard guard(device);
  CheckCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), what);
  CheckCuda(cudaEventCreateWithFlags(&inputs_ready, cudaEventDisableTiming), what);
  CheckCuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), what);
}

void NcclCommunicator::State::Fatal(ErrorCode code, const std::string& message,
                                    std::vector<at::Tensor> buffers) {
  if (comm != nullptr) {
    DeviceGuard guard(device);
    ncclCommAbort(comm);
    comm = nullptr;
    leak_buffers = true;
  }
  for (auto& buffer : buffers) parked.push_back(std::move(buffer));
  broken = message;
  Fail(code, message);
}

void NcclCommunicator::State::CheckNccl(ncclResult_t rc, const std::string& what,
                                        const Deadline& deadline,
                                        const std::vector<at::Tensor>& buffers) {
  // Settle the communicator even on ncclSuccess: a non-blocking call may return success
  // while the communicator's own state is still in progress (NVIDIA/nccl#1734), and the
  // next call on it would then be refused.
  if ((rc == ncclInProgress || rc == ncclSuccess) && comm != nullptr) rc = PollComm(comm, deadline);
  if (rc == ncclSuccess) return;
  if (rc == ncclInProgress) {
    Fatal(ErrorCode::kDeadlineExceeded, what + " exceeded " + deadline.Seconds() + " s", buffers);
  }
  Fatal(CodeFor(rc), NcclError(rc, what), buffers);
}

void NcclCommunicator::State::OrderAfterInputs(const std::string& what) {
  CheckCuda(cudaEventRecord(inputs_ready, cudaStreamLegacy), what);
  CheckCuda(cudaStreamWaitEvent(stream, inputs_ready, 0), what);
}

void NcclCommunicator::State::Finish(const std::string& what, const Deadline& deadline,
                                     std::vector<at::Tensor> buffers) {
  CheckCuda(cudaEventRecord(done, stream), what);
  PollPacer pacer;
  while (true) {
    const cudaError_t query = cudaEventQuery(done);
    if (query == cudaSuccess) return;
    if (query != cudaErrorNotReady) {
      Fatal(ErrorCode::kInternal, what + ": CUDA " + cudaGetErrorString(query), buffers);
    }
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm, &state);
    if (state != ncclSuccess && state != ncclInProgress) {
      Fatal(CodeFor(state), NcclError(state, what), buffers);
    }
    if (deadline.Passed()) {
      Fatal(ErrorCode::kDeadlineExceeded, what + " exceeded " + deadline.Seconds() + " s", buffers);
    }
    pacer.Pause();
  }
}

std::vector<int64_t> NcclCommunicator::State::GatherInt64(const std::vector<int64_t>& mine,
                                                          int size, const std::string& what,
                                                          const Deadline& deadline) {
  const size_t bytes = mine.size() * sizeof(int64_t) * (size + 1);
  if (bytes > staging_bytes) {
    CheckCuda(cudaStreamSynchronize(stream), what);  // nothing of ours is queued
    if (device_staging != nullptr) cudaFree(device_staging);
    if (host_staging != nullptr) cudaFreeHost(host_staging);
    device_staging = host_staging = nullptr;
    staging_bytes = 0;
    CheckCuda(cudaMalloc(&device_staging, bytes), what);
    CheckCuda(cudaMallocHost(&host_staging, bytes), what);
    staging_bytes = bytes;
  }
  const size_t own = mine.size() * sizeof(int64_t);
  auto* host = static_cast<char*>(host_staging);
  auto* dev = static_cast<char*>(device_staging);
  std::memcpy(host, mine.data(), own);
  CheckCuda(cudaMemcpyAsync(dev, host, own, cudaMemcpyHostToDevice, stream), what);
  CheckNccl(ncclAllGather(dev, dev + own, mine.size(), ncclInt64, comm, stream), what, deadline);
  CheckCuda(cudaMemcpyAsync(host + own, dev + own, own * size, cudaMemcpyDeviceToHost, stream),
            what);
  Finish(what, deadline, {});
  std::vector<int64_t> all(mine.size() * size);
  std::memcpy(all.data(), host + own, own * size);
  return all;
}

bool NcclAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

std::unique_ptr<Communicator> MakeNcclCommunicator(Communicator& parent, int device,
                                                   std::chrono::milliseconds default_timeout) {
  return std::make_unique<NcclCommunicator>(parent, device, default_timeout);
}

NcclCommunicator::NcclCommunicator(Communicator& parent, int device,
                                   std::chrono::milliseconds default_timeout)
    : name_(parent.name()),
      default_timeout_(default_timeout),
      rank_(parent.rank()),
      size_(parent.size()) {
  const std::string what = DescribeCall("NcclInit", name_, 0);
  const Deadline deadline(default_timeout);
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess || device < 0 || device >= count) {
    Fail(ErrorCode::kUnavailable, what, ": CUDA device ", device, " is not available (",
         rc == cudaSuccess ? std::to_string(count) + " devices" : cudaGetErrorString(rc), ")");
  }
  state_ = std::make_unique<State>(device, default_timeout);
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (rank_ == 0 && ncclGetUniqueId(&id) != ncclSuccess) {
    Fail(ErrorCode::kUnavailable, what, ": ncclGetUniqueId failed");
  }
  at::Tensor wire = at::empty({static_cast<int64_t>(sizeof(id))}, at::kByte);
  std::memcpy(wire.data_ptr(), &id, sizeof(id));
  CollectiveOptions options;
  options.timeout = default_timeout;
  parent.Broadcast(wire, 0, options);
  std::memcpy(&id, wire.data_ptr(), sizeof(id));
  state_->CreateStreams(what);
  state_->Init(size_, id, rank_, what, deadline);
}

void NcclCommunicator::State::Init(int nranks, const ncclUniqueId& id, int rank,
                                   const std::string& what, const Deadline& deadline) {
  DeviceGuard guard(device);
  ncclConfig_t config = NonBlockingConfig();
  const ncclResult_t init = ncclCommInitRankConfig(&comm, nranks, id, rank, &config);
  if (init != ncclSuccess && init != ncclInProgress) {
    comm = nullptr;
    Fail(CodeFor(init), what, ": NCCL ", ncclGetErrorString(init));
  }
  CheckNccl(init, what, deadline);
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state, std::string name,
                                   std::chrono::milliseconds default_timeout)
    : state_(std::move(state)), name_(std::move(name)), default_timeout_(default_timeout) {
  ncclCommUserRank(state_->comm, &rank_);
  ncclCommCount(state_->comm, &size_);
}

NcclCommunicator::~NcclCommunicator() = default;

int NcclCommunicator::device() const { return state_->device; }

namespace {

// A contiguous view of `tensor` after the checks every NCCL call needs.
at::Tensor CheckedBuffer(const at::Tensor& tensor, int device, const std::string& what,
                         ncclDataType_t* type) {
  if (!tensor.defined()) Fail(ErrorCode::kInvalidArgument, what, ": undefined tensor");
  if (!tensor.device().is_cuda() || tensor.device().index() != device) {
    Fail(ErrorCode::kInvalidArgument, what, ": tensor on ", tensor.device(),
         "; this NCCL group works on cuda:", device);
  }
  if (!NcclType(tensor.scalar_type(), type)) {
    Fail(ErrorCode::kInvalidArgument, what, ": unsupported dtype ", tensor.scalar_type());
  }
  return tensor.is_contiguous() ? tensor : tensor.contiguous();
}

}  // namespace

void NcclCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op,
                                 const CollectiveOptions& options) {
  const std::string what = DescribeCall("AllReduce", name_, ++seq_);
  state_->CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  ncclDataType_t type;
  at::Tensor buf = CheckedBuffer(tensor, state_->device, what, &type);
  const bool is_bool = tensor.scalar_type() == at::kBool;
  if (is_bool && op == ReduceOp::kAverage) {
    Fail(ErrorCode::kInvalidArgument, what, ": kAverage of a bool tensor");
  }
  const ncclRedOp_t nccl_op = is_bool || op == ReduceOp::kMax ? ncclMax : ncclSum;
  DeviceGuard guard(state_->device);
  state_->OrderAfterInputs(what);
  state_->CheckNccl(ncclAllReduce(buf.data_ptr(), buf.data_ptr(), buf.numel(), type, nccl_op,
                                  state_->comm, state_->stream),
                    what, deadline, {buf});
  state_->Finish(what, deadline, {buf});
  if (op == ReduceOp::kAverage) {
    if (at::isFloatingType(buf.scalar_type())) {
      buf.div_(size_);
    } else {
      buf.div_(size_, "trunc");
    }
  }
  if (!buf.is_same(tensor)) tensor.copy_(buf);
}

void NcclCommunicator::Broadcast(at::Tensor& tensor, int root, const CollectiveOptions& options) {
  const std::string what = DescribeCall("Broadcast", name_, ++seq_);
  state_->CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  if (root < 0 || root >= size_) {
    Fail(ErrorCode::kInvalidArgument, what, ": root ", root, " is not a rank of a group of ",
         size_);
  }
  ncclDataType_t type;
  at::Tensor buf = CheckedBuffer(tensor, state_->device, what, &type);
  DeviceGuard guard(state_->device);
  state_->OrderAfterInputs(what);
  state_->CheckNccl(ncclBroadcast(buf.data_ptr(), buf.data_ptr(), buf.numel(), type, root,
                                  state_->comm, state_->stream),
                    what, deadline, {buf});
  state_->Finish(what, deadline, {buf});
  if (!buf.is_same(tensor)) tensor.copy_(buf);
}

at::Tensor NcclCommunicator::AllGather(const at::Tensor& tensor, const CollectiveOptions& options) {
  const std::string what = DescribeCall("AllGather", name_, ++seq_);
  state_->CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  ncclDataType_t type;
  at::Tensor in = CheckedBuffer(tensor, state_->device, what, &type);
  std::vector<int64_t> sizes{size_};
  sizes.insert(sizes.end(), tensor.sizes().begin(), tensor.sizes().end());
  at::Tensor out = at::empty(sizes, in.options());
  DeviceGuard guard(state_->device);
  state_->OrderAfterInputs(what);
  state_->CheckNccl(
      ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), type, state_->comm, state_->stream),
      what, deadline, {in, out});
  state_->Finish(what, deadline, {in, out});
  return out;
}

at::Tensor NcclCommunicator::AllToAll(const at::Tensor& input,
                                      const std::vector<int64_t>& send_splits,
                                      const std::vector<int64_t>& recv_splits,
                                      const CollectiveOptions& options) {
  const std::string what = DescribeCall("AllToAll", name_, ++seq_);
  state_->CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  const ClassifiedInput classified = ClassifyAllToAllInput(
      input,
      [](const at::Tensor& t, int device) {
        return t.device().is_cuda() && t.device().index() == device;
      },
      state_->device,
      [](at::ScalarType dtype) {
        ncclDataType_t unused;
        return NcclType(dtype, &unused);
      });
  DeviceGuard guard(state_->device);
  const std::vector<int64_t> records = state_->GatherInt64(
      MakeSplitRecord(classified.described, send_splits, recv_splits, size_, classified.problem),
      size_, what, deadline);
  const AllToAllPlan plan = CheckSplitRecords(records, size_, rank_, INT64_MAX, what);

  at::Tensor in = input.is_contiguous() ? input : input.contiguous();
  std::vector<int64_t> sizes = input.sizes().vec();
  sizes[0] = plan.recv_total;
  at::Tensor out = at::empty(sizes, input.options());
  const size_t row_bytes = static_cast<size_t>(plan.row_numel) * input.element_size();
  auto* send = static_cast<char*>(in.data_ptr());
  auto* recv = static_cast<char*>(out.data_ptr());
  state_->OrderAfterInputs(what);
  state_->CheckNccl(ncclGroupStart(), what, deadline, {in, out});
  size_t send_offset = 0;
  size_t recv_offset = 0;
  for (int p = 0; p < size_; ++p) {
    const size_t send_bytes = static_cast<size_t>(plan.send_rows[p]) * row_bytes;
    const size_t recv_bytes = static_cast<size_t>(plan.recv_rows[p]) * row_bytes;
    if (send_bytes > 0) {
      state_->CheckNccl(
          ncclSend(send + send_offset, send_bytes, ncclUint8, p, state_->comm, state_->stream),
          what, deadline, {in, out});
    }
    if (recv_bytes > 0) {
      state_->CheckNccl(
          ncclRecv(recv + recv_offset, recv_bytes, ncclUint8, p, state_->comm, state_->stream),
          what, deadline, {in, out});
    }
    send_offset += send_bytes;
    recv_offset += recv_bytes;
  }
  state_->CheckNccl(ncclGroupEnd(), what, deadline, {in, out});
  state_->Finish(what, deadline, {in, out});
  return out;
}

void NcclCommunicator::Barrier(const CollectiveOptions& options) {
  const std::string what = DescribeCall("Barrier", name_, ++seq_);
  state_->CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  DeviceGuard guard(state_->device);
  // A one-word all-gather through the staging buffers.
  state_->GatherInt64({int64_t{rank_}}, size_, what, deadline);
}

void NcclCommunicator::Send(const at::Tensor& tensor, int peer, int tag,
                            const CollectiveOptions& options) {
  const std::string what = DescribeCall(
      "Send to rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")", name_, seq_);
  state_->CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  if (peer < 0 || peer >= size_ || peer == rank_ || tag < 0) {
    Fail(ErrorCode::kInvalidArgument, what, ": needs another rank of a group of ", size_,
         " and a tag >= 0");
  }
  ncclDataType_t type;
  at::Tensor buf = CheckedBuffer(tensor, state_->device, what, &type);
  DeviceGuard guard(state_->device);
  state_->OrderAfterInputs(what);
  state_->CheckNccl(ncclSend(buf.data_ptr(), buf.numel(), type, peer, state_->comm, state_->stream),
                    what, deadline, {buf});
  state_->Finish(what, deadline, {buf});
}

void NcclCommunicator::Recv(at::Tensor& tensor, int peer, int tag,
                            const CollectiveOptions& options) {
  const std::string what = DescribeCall(
      "Recv from rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")", name_, seq_);
  state_->CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  if (peer < 0 || peer >= size_ || peer == rank_ || tag < 0) {
    Fail(ErrorCode::kInvalidArgument, what, ": needs another rank of a group of ", size_,
         " and a tag >= 0");
  }
  ncclDataType_t type;
  at::Tensor buf = CheckedBuffer(tensor, state_->device, what, &type);
  DeviceGuard guard(state_->device);
  state_->OrderAfterInputs(what);
  state_->CheckNccl(ncclRecv(buf.data_ptr(), buf.numel(), type, peer, state_->comm, state_->stream),
                    what, deadline, {buf});
  state_->Finish(what, deadline, {buf});
  if (!buf.is_same(tensor)) tensor.copy_(buf);
}

std::unique_ptr<Communicator> NcclCommunicator::Split(const std::vector<int>& ranks,
                                                      const std::string& name) {
  const std::string what = DescribeCall("Split", name_, ++seq_);
  state_->CheckUsable(what);
  const Deadline deadline(default_timeout_);
  // NOTE [split rendezvous]
  const SplitMembership membership = CheckSplitRanks(ranks, size_, rank_);
  const int key = membership.key;
  DeviceGuard guard(state_->device);
  const std::vector<int64_t> prints =
      state_->GatherInt64(SplitFingerprint(ranks, name), size_, what, deadline);
  CheckSplitAgreement(prints.data(), size_, membership, what);
  // The subgroup is a new communicator initialised from a unique id that its first rank
  // draws and that reaches the members through an all-gather on this group. (Not
  // ncclCommSplit: with non-blocking communicators its child handle appears only after
  // the parent's state settles, and on NCCL 2.28 at world size 1 the split job failed;
  // docs/benchmarks.md, GPU check.)
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  // Each rank sends the id words and a status word (1: the first rank could not draw an id),
  // so that a failure there fails every rank at once instead of at the deadline.
  constexpr size_t kIdWords = (sizeof(ncclUniqueId) + sizeof(int64_t) - 1) / sizeof(int64_t);
  std::vector<int64_t> mine(kIdWords + 1, 0);
  if (!ranks.empty() && ranks[0] == rank_) {
    if (ncclGetUniqueId(&id) == ncclSuccess) {
      std::memcpy(mine.data(), &id, sizeof(id));
    } else {
      mine[kIdWords] = 1;
    }
  }
  const std::vector<int64_t> ids = state_->GatherInt64(mine, size_, what, deadline);
  if (ranks.empty()) return nullptr;
  const int64_t* leader = ids.data() + static_cast<size_t>(ranks[0]) * (kIdWords + 1);
  if (leader[kIdWords] != 0) {
    Fail(ErrorCode::kUnavailable, what, ": ncclGetUniqueId failed on rank ", ranks[0]);
  }
  if (key < 0) return nullptr;
  std::memcpy(&id, leader, sizeof(id));
  auto state = std::make_unique<State>(state_->device, default_timeout_);
  state->CreateStreams(what);
  state->Init(static_cast<int>(ranks.size()), id, key, what, deadline);
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(std::move(state), name, default_timeout_));
}

}  // namespace flexmoe
