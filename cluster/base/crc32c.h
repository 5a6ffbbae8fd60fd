// CRC32C (Castagnoli) checksums for shard records and frames; uses SSE4.2 when present.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cluster/base/cpu_isa.h"

namespace flexmoe {

// Extends `crc` (0 to start) over `size` bytes at `data`. `isa` below kSse42 forces the
// table-driven path (both give the same value; tests run each).
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0, CpuIsa isa = HostIsa());

}  // namespace flexmoe
