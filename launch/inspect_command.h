// `flexmoe inspect-checkpoint DIR`: prints a checkpoint (training state or best-parameters
// export) and verifies every file's size, CRC32C and tensor list; exit 2 naming the file
// that is missing, truncated or corrupt.
#pragma once

namespace flexmoe {

int InspectCheckpointCommand(int argc, char** argv);

}  // namespace flexmoe
