// validate-config, synth and prepare (data_commands.h).
#include "launch/data_commands.h"

#include <algorithm>
#include <iostream>

#include "cluster/base/error.h"
#include "cluster/base/peak_memory.h"
#include "data_loader/prepare.h"
#include "data_loader/synth.h"
#include "launch/cli/args.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

config::Config LoadFromArgs(const Args& args) {
  std::string path = args.Get("config");
  if (path.empty() && !args.positional.empty()) path = args.positional[0];
  if (path.empty()) Fail(ErrorCode::kInvalidArgument, args.command, ": --config FILE is required");
  return LoadConfig(path, args.overrides);
}

}  // namespace

int ValidateConfig(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::cout << ConfigToText(LoadFromArgs(args));
  return 0;
}

int Synth(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  config::Config config = LoadFromArgs(args);
  std::string out = args.Get("out", config.data().input());
  SynthResult result = GenerateSynthetic(config, out);
  std::cout << "wrote " << result.samples << " synthetic samples to " << out << "\n";
  return 0;
}

int Prepare(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  config::Config config = LoadFromArgs(args);
  std::string out = args.Get("out", config.data().prepared_dir());
  PrepareResult result = PrepareDataset(config, out, &std::cerr);
  std::cout << FormatSummary(result.meta);
  std::cout << "wrote " << out << " in " << result.seconds << " s ("
            << result.input_bytes / 1e6 / std::max(result.seconds, 1e-9) << " MB/s over "
            << result.input_bytes / 1e6 << " MB of input, three passes); peak resident memory "
            << PeakResidentMb() << " MB\n";
  return 0;
}

}  // namespace flexmoe
