// Seconds as a steady_clock duration, for the deadlines of cluster/net.
#pragma once

#include <chrono>

namespace flexmoe::net {

inline std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

}  // namespace flexmoe::net
