// Byte strings collected from every rank on one (checkpoint manifests gather each rank's
// file list this way), or sent from one to all. Collectives: every rank of the group calls
// them in the same order.
#pragma once

#include <string>
#include <vector>

#include "cluster/comm/communicator.h"

namespace flexmoe {

// On `root`: every rank's `mine`, in rank order; on the others: empty.
std::vector<std::string> GatherBytes(Communicator& comm, const std::string& mine, int root);

// Every rank ends with root's `*bytes`.
void BroadcastBytes(Communicator& comm, std::string* bytes, int root);

}  // namespace flexmoe
