// HostName (host_name.h).
#include "cluster/base/host_name.h"

#include <unistd.h>

namespace flexmoe {

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

}  // namespace flexmoe
