// Host index helpers (host_index.h).
#include "experts/host_index.h"

#include <ATen/ATen.h>

namespace flexmoe {

at::Tensor HostIndexTo(const at::Tensor& host, const c10::Device& device) {
  if (device.is_cpu()) return host;
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

at::Tensor GatherIndex(const RowRanges& ranges, int64_t total) {
  at::Tensor index = at::empty({total}, at::kLong);
  int64_t* out = index.data_ptr<int64_t>();
  int64_t n = 0;
  for (const auto& [begin, length] : ranges) {
    for (int64_t i = 0; i < length; ++i) out[n++] = begin + i;
  }
  return index;
}

bool InOrder(const RowRanges& ranges) {
  int64_t next = 0;
  for (const auto& [begin, length] : ranges) {
    if (length == 0) continue;
    if (begin != next) return false;
    next += length;
  }
  return true;
}

at::Tensor InverseIndex(const at::Tensor& index) {
  at::Tensor inverse = at::empty_like(index);
  const int64_t* in = index.data_ptr<int64_t>();
  int64_t* out = inverse.data_ptr<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i) out[in[i]] = i;
  return inverse;
}

}  // namespace flexmoe
