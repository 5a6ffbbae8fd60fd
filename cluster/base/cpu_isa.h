// The vector instruction sets flexmoe's hand-written kernels use (CRC32C's SSE4.2, the
// keyed random numbers' AVX2 and AVX-512 passes), ordered, and what this CPU has. Each
// kernel takes a level as an argument, defaulting to the host's, so a test runs every
// narrower path on any machine: all paths must give the same bits.
#pragma once

namespace flexmoe {

enum class CpuIsa {
  kScalar = 0,  // portable C++
  kSse42 = 1,   // SSE4.2 (the crc32 instruction)
  kAvx2 = 2,    // AVX2 (and SSE4.2)
  kAvx512 = 3,  // AVX-512 F and DQ (and AVX2, SSE4.2)
};

// The widest level this CPU supports (kScalar off x86-64). Read once; it cannot change.
CpuIsa HostIsa();

// min(wanted, HostIsa()): a level never exceeds what the CPU can run.
CpuIsa UsableIsa(CpuIsa wanted);

const char* IsaName(CpuIsa isa);

}  // namespace flexmoe
