// Index tensors built on the host (dispatch bookkeeping) and copied to the rows' device
// without a device synchronisation.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace flexmoe {

// `host` (a CPU tensor) itself when `device` is the host; otherwise a copy on `device`,
// made through pinned memory without blocking the host (the caching host allocator keeps
// the pinned buffer until the copy is done).
at::Tensor HostIndexTo(const at::Tensor& host, const c10::Device& device);

}  // namespace flexmoe
