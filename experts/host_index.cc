// HostIndexTo (host_index.h).
#include "experts/host_index.h"

#include <ATen/ATen.h>

namespace flexmoe {

at::Tensor HostIndexTo(const at::Tensor& host, const c10::Device& device) {
  if (device.is_cpu()) return host;
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace flexmoe
