// `flexmoe init`: a commented config for a wide CSV (data_loader/config_init.h).
#pragma once

namespace flexmoe {

int InitCommand(int argc, char** argv);

}  // namespace flexmoe
