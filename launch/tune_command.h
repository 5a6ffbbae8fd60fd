// `flexmoe tune --config FILE --space FILE --trials N --out DIR`: the command line of the
// tune library (tune/tuner.h, docs/tune.md).
#pragma once

namespace flexmoe {

int TuneCommand(int argc, char** argv);

}  // namespace flexmoe
