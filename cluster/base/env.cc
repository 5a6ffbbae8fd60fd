// GetEnv (env.h).
#include "cluster/base/env.h"

#include <cstdlib>

namespace flexmoe {

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

}  // namespace flexmoe
