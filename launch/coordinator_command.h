// `flexmoe coordinator --config FILE [--listen HOST:PORT]`: the job's coordinator
// (cluster/coord/service.h) until the job ends; exits with the job's status.
#pragma once

namespace flexmoe {

int CoordinatorCommand(int argc, char** argv);

}  // namespace flexmoe
