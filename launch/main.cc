// The flexmoe command: subcommands for configs, data preparation and training. Owns the
// process-wide set-up (glog) and maps errors to exit statuses (2 for bad input).
#include <glog/logging.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>

#include "cluster/base/allocator.h"
#include "cluster/base/error.h"
#include "cluster/base/peak_memory.h"
#include "data_loader/prepare.h"
#include "data_loader/synth.h"
#include "launch/args.h"
#include "launch/command_spec.h"
#include "launch/inference_commands.h"
#include "launch/init_command.h"
#include "launch/inspect_command.h"
#include "launch/lease_command.h"
#include "launch/loader_command.h"
#include "launch/membership.h"
#include "launch/serve_command.h"
#include "launch/train_command.h"
#include "launch/tune_command.h"
#include "launch/wait_policy.h"
#include "launch/worker_command.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

config::Config LoadFromArgs(const Args& args) {
  std::string path = args.Get("config");
  if (path.empty() && !args.positional.empty()) path = args.positional[0];
  if (path.empty()) Fail(ErrorCode::kInvalidArgument, args.command, ": --config FILE is required");
  return LoadConfig(path, args.overrides);
}

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

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  flexmoe::EnsurePassiveOpenMpWait(argv);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  using Command = std::function<int(int, char**)>;
  const std::map<std::string, Command> commands = {
      {"init", flexmoe::InitCommand},
      {"validate-config", flexmoe::ValidateConfig},
      {"synth", flexmoe::Synth},
      {"prepare", flexmoe::Prepare},
      {"train", flexmoe::TrainCommand},
      {"worker", flexmoe::WorkerCommand},
      {"loader", flexmoe::LoaderCommand},
      {"inspect-checkpoint", flexmoe::InspectCheckpointCommand},
      {"coordinator", flexmoe::CoordinatorCommand},
      {"eval", flexmoe::EvalCommand},
      {"predict", flexmoe::PredictCommand},
      {"report", flexmoe::ReportCommand},
      {"tune", flexmoe::TuneCommand},
      {"lease", flexmoe::LeaseCommand},
      {"serve", flexmoe::ServeCommand},
  };
  if (argc < 2 || std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--help") == 0) {
    std::cout << flexmoe::UsageText();
    return argc < 2 ? 2 : 0;
  }
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::cerr << "flexmoe: unknown command '" << argv[1] << "'\n" << flexmoe::UsageText();
    return 2;
  }
  // COMMAND --help: its flags, before anything starts (MPI for a worker).
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << flexmoe::CommandHelp(*flexmoe::FindCommandSpec(argv[1]));
      return 0;
    }
  }
  // A training rank reuses its large buffers every step: keep them in the heap. The other
  // commands have no such loop, and a heap that is never trimmed would only keep what they
  // free.
  if (it->first == "worker") flexmoe::KeepLargeAllocationsInTheHeap();
  return flexmoe::RunReportingErrors(std::string("flexmoe ") + argv[1],
                                     [&] { return it->second(argc, argv); });
}
