// Index tensors built on the host (dispatch bookkeeping) and copied to the rows' device
// without a device synchronisation.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace flexmoe {

// `host` (a CPU tensor) itself when `device` is the host; otherwise a copy on `device`,
// made through pinned memory without blocking the host (the caching host allocator keeps
// the pinned buffer until the copy is done).
at::Tensor HostIndexTo(const at::Tensor& host, const c10::Device& device);

// Row ranges as {begin, length}.
using RowRanges = std::vector<std::pair<int64_t, int64_t>>;

// The host int64 index [total] that gathers `ranges` one after the other.
at::Tensor GatherIndex(const RowRanges& ranges, int64_t total);

// True when the non-empty `ranges` follow each other from row 0: their gather is the
// identity.
bool InOrder(const RowRanges& ranges);

// The inverse permutation of a host gather index.
at::Tensor InverseIndex(const at::Tensor& index);

}  // namespace flexmoe
