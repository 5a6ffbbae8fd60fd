// Byte strings collected from every rank on one (checkpoint manifests gather each rank's
// file list this way) or sent from one to all, and rank 0's failures made every rank's.
// Collectives: every rank of the group calls them in the same order.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cluster/comm/communicator.h"

namespace flexmoe {

// On `root`: every rank's `mine`, in rank order; on the others: empty.
std::vector<std::string> GatherBytes(Communicator& comm, const std::string& mine, int root);

// Every rank ends with root's `*bytes`.
void BroadcastBytes(Communicator& comm, std::string* bytes, int root);

// Runs `task` on rank 0 of `world` (null or of size 1: here) and makes its outcome every
// rank's: when it throws, every rank throws flexmoe::Error with its code and message, so that
// no rank waits in a later collective for a rank 0 that has already failed. A collective.
void RunOnRankZero(Communicator* world, const std::function<void()>& task);

}  // namespace flexmoe
