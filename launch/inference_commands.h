// `flexmoe eval`, `flexmoe predict` and `flexmoe report`: the command lines of the
// inference library (inference/), docs/inference.md.
#pragma once

namespace flexmoe {

int EvalCommand(int argc, char** argv);
int PredictCommand(int argc, char** argv);
int ReportCommand(int argc, char** argv);

}  // namespace flexmoe
