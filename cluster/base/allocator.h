// Process-wide allocator tuning, called once from a program's main() (never from library
// code). Large tensors (exchange buffers, gradient buckets) are then served from memory the
// process already touched instead of fresh mmap'd pages: glibc otherwise maps every
// allocation above its mmap threshold anew and each call pays the page faults (the
// all-to-all of 8 MiB ran 2-3x slower than MPI into a reused buffer; docs/benchmarks.md).
#pragma once

#include <malloc.h>

namespace flexmoe {

inline void KeepLargeAllocationsInTheHeap() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // allocations below 1 GiB come from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and freed memory stays for the next step
}

}  // namespace flexmoe
