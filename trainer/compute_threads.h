// The compute thread count and BLAS identity: LibTorch's intra-op pool and, when the BLAS
// behind LibTorch is OpenBLAS, its own thread pool (which at::set_num_threads does not
// reach), looked up at run time so that any BLAS works.
#pragma once

#include <string>

namespace flexmoe {

// Sets LibTorch's and OpenBLAS's thread counts (n >= 1).
void SetComputeThreads(int n);

// "OpenBLAS 0.3.21 ... (core SkylakeX)", or "unknown BLAS" when it is not OpenBLAS.
std::string BlasDescription();

}  // namespace flexmoe
