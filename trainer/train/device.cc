// TrainingDevice and the build's CUDA support (device.h).
#include "trainer/train/device.h"

#include <torch/cuda.h>

#include "cluster/base/error.h"

namespace flexmoe {

bool TorchHasCuda() {
#ifdef FLEXMOE_TORCH_CUDA
  return true;
#else
  return false;
#endif
}

namespace {

// The number of visible CUDA devices; throws when CUDA cannot be used at all.
int VisibleCudaDevices() {
  if (!TorchHasCuda()) {
    Fail(ErrorCode::kFailedPrecondition,
         "training.device: CUDA: this build's LibTorch is CPU-only (Debian's libtorch is); "
         "configure with -DFLEXMOE_TORCH_DIR=<a CUDA LibTorch>/share/cmake/Torch, e.g. the one "
         "in a CUDA PyTorch wheel (docs/gpu.md), or set training.device: CPU");
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (count <= 0) {
    Fail(ErrorCode::kFailedPrecondition,
         "training.device: CUDA: no CUDA device is visible on this machine (check nvidia-smi "
         "and CUDA_VISIBLE_DEVICES), or set training.device: CPU");
  }
  return count;
}

}  // namespace

c10::Device TrainingDevice(config::TrainingConfig::Device device, int local_rank) {
  if (device != config::TrainingConfig::CUDA) return c10::Device(c10::kCPU);
  const int count = VisibleCudaDevices();
  const int index = (local_rank < 0 ? 0 : local_rank) % count;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

void CheckDeviceSupport(const config::Config& config) {
  if (config.training().device() == config::TrainingConfig::CUDA) VisibleCudaDevices();
  if (config.cluster().backend() == config::ClusterConfig::NCCL) {
#ifndef FLEXMOE_HAVE_NCCL
    Fail(ErrorCode::kFailedPrecondition,
         "cluster.backend: NCCL: this build has no NCCL backend (CMake found no nccl.h and "
         "libnccl under FLEXMOE_CUDA_ROOT); set cluster.backend: AUTO or MPI (docs/gpu.md)");
#endif
    if (config.training().device() != config::TrainingConfig::CUDA) {
      Fail(ErrorCode::kFailedPrecondition,
           "cluster.backend: NCCL carries CUDA tensors: it needs training.device: CUDA");
    }
  }
}

std::string DeviceName(const c10::Device& device) { return device.str(); }

}  // namespace flexmoe
