// `flexmoe train`: single-process training on a prepared dataset.
#pragma once

#include <string>

namespace flexmoe {

int TrainCommand(int argc, char** argv);

// runs/<date-time>, the default run directory.
std::string DefaultRunDir();

}  // namespace flexmoe
