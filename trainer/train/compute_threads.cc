// Thread counts and BLAS identification through dlsym (compute_threads.h).
#include "trainer/train/compute_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace flexmoe {

void SetComputeThreads(int n) {
  at::set_num_threads(n);
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);  // see the header: OpenBLAS's own pool stays at one thread
  }
}

std::string BlasDescription() {
  using GetString = char* (*)();
  auto config = reinterpret_cast<GetString>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  auto core = reinterpret_cast<GetString>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (config == nullptr) return "unknown BLAS (not OpenBLAS)";
  std::string text = config();
  if (core != nullptr) text += " (core " + std::string(core()) + ")";
  return text;
}

}  // namespace flexmoe
