// The device a worker trains on (training.device, docs/gpu.md): the host, or CUDA device
// (local rank) mod (visible devices).
#pragma once

#include <c10/core/Device.h>

#include <string>

#include "proto/config.pb.h"

namespace flexmoe {

// True when this build's LibTorch was built with CUDA (CMake found libc10_cuda beside it).
bool TorchHasCuda();

// The device for `device` on the worker with this local rank (its index among the workers
// of its node). CUDA on a build whose LibTorch has no CUDA, or on a machine with no visible
// CUDA device, throws kFailedPrecondition naming training.device and what to do.
c10::Device TrainingDevice(config::TrainingConfig::Device device, int local_rank);

// Checks that `config` can run on this build and machine (training.device, cluster.backend)
// without choosing a device: `flexmoe train` calls it before it starts any process.
void CheckDeviceSupport(const config::Config& config);

// "cpu" or "cuda:N".
std::string DeviceName(const c10::Device& device);

}  // namespace flexmoe
