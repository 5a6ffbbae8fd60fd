// What this CPU supports (cpu_isa.h).
#include "cluster/base/cpu_isa.h"

#include <algorithm>

namespace flexmoe {
namespace {

CpuIsa Detect() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) {
    return CpuIsa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2")) return CpuIsa::kAvx2;
  if (__builtin_cpu_supports("sse4.2")) return CpuIsa::kSse42;
#endif
  return CpuIsa::kScalar;
}

}  // namespace

CpuIsa HostIsa() {
  static const CpuIsa host = Detect();  // a fact about the machine, not state
  return host;
}

CpuIsa UsableIsa(CpuIsa wanted) { return std::min(wanted, HostIsa()); }

const char* IsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kSse42:
      return "sse4.2";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

}  // namespace flexmoe
