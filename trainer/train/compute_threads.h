// The compute thread count and BLAS identity: LibTorch's intra-op pool and, when the BLAS
// behind LibTorch is OpenBLAS, its own thread pool (which at::set_num_threads does not
// reach), looked up at run time so that any BLAS works.
#pragma once

#include <string>

namespace flexmoe {

// Sets LibTorch's intra-op pool to n threads (n >= 1) and OpenBLAS's own pool to ONE
// thread: OpenBLAS's pthreads spin between calls and starve LibTorch's OpenMP threads (on
// 2 cores, 2+2 threads ran the ADNI-like step 2-3x slower than 2+1; docs/benchmarks.md).
void SetComputeThreads(int n);

// "OpenBLAS 0.3.21 ... (core SkylakeX)", or "unknown BLAS" when it is not OpenBLAS.
std::string BlasDescription();

}  // namespace flexmoe
