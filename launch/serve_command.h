// `flexmoe serve RUN_DIR`: the live page and /metrics from a run directory (cluster/web).
#pragma once

namespace flexmoe {

int ServeCommand(int argc, char** argv);

}  // namespace flexmoe
