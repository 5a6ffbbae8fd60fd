// Peak resident memory (peak_memory.h).
#include "cluster/base/peak_memory.h"

#include <sys/resource.h>

namespace flexmoe {

double PeakResidentMb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

}  // namespace flexmoe
