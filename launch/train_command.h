// `flexmoe train`: single-process training on a prepared dataset.
#pragma once

namespace flexmoe {

int TrainCommand(int argc, char** argv);

}  // namespace flexmoe
