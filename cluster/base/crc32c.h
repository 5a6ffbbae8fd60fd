// CRC32C (Castagnoli) checksums for shard records and frames; uses SSE4.2 when present.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flexmoe {

// Extends `crc` (0 to start) over `size` bytes at `data`.
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace flexmoe
