// GetEnv (env.h).
#include "cluster/base/env.h"

#include <cstdlib>

namespace flexmoe {

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

int LauncherTaskIndex() {
  for (const char* name : {kEnvOmpiWorldRank, kEnvPmixRank, kEnvSlurmProcId}) {
    const std::string value = GetEnv(name);
    if (!value.empty()) return std::atoi(value.c_str());
  }
  return 0;
}

}  // namespace flexmoe
