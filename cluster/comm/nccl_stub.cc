// The NCCL entry points of a build without NCCL (CMake did not find it): no NCCL backend.
#include "cluster/base/error.h"
#include "cluster/comm/nccl_communicator.h"

namespace flexmoe {

bool NcclAvailable() { return false; }

std::unique_ptr<Communicator> MakeNcclCommunicator(Communicator&, int, std::chrono::milliseconds) {
  Fail(ErrorCode::kFailedPrecondition, "MakeNcclCommunicator: built without NCCL");
}

}  // namespace flexmoe
