// Which of several HOST:PORT addresses lie on this host: a worker reads from the loader on
// its own node (cluster.loader_addresses lists one loader per node).
#pragma once

#include <string>
#include <vector>

namespace flexmoe {

// True when `host` names this machine: its host name (short or full), a loopback address,
// or a name or address that resolves to one of this machine's interface addresses.
bool IsLocalHost(const std::string& host);

// The address `worker` uses among `addresses` (HOST:PORT each, not empty): one on this host
// when there is any (spread over them by worker index), otherwise addresses[worker % size].
std::string PickNodeLocalAddress(const std::vector<std::string>& addresses, int worker);

}  // namespace flexmoe
