// This machine's host name, as gethostname(2) gives it: the name members report to the
// coordinator, leases record, and node-local choices compare against.
#pragma once

#include <string>

namespace flexmoe {

// The host name, or "unknown" when it cannot be read.
std::string HostName();

}  // namespace flexmoe
