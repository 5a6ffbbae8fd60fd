// The commands on configs and data: `flexmoe validate-config` (the resolved config, every
// default filled in, or the error in it), `flexmoe synth` (a synthetic layout-A dataset) and
// `flexmoe prepare` (shards and their description from raw input; docs/data.md).
#pragma once

namespace flexmoe {

int ValidateConfig(int argc, char** argv);
int Synth(int argc, char** argv);
int Prepare(int argc, char** argv);

}  // namespace flexmoe
