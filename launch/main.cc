// The flexmoe command: subcommands for configs, data preparation and training. Owns the
// process-wide set-up (glog) and maps errors to exit statuses (2 for bad input).
#include <glog/logging.h>

#include <cstring>
#include <functional>
#include <iostream>
#include <map>

#include "cluster/base/allocator.h"
#include "cluster/base/error.h"
#include "launch/cli/args.h"  // CommandHelp
#include "launch/cli/command_spec.h"
#include "launch/coordinator_command.h"
#include "launch/data_commands.h"
#include "launch/inference_commands.h"
#include "launch/init_command.h"
#include "launch/inspect_command.h"
#include "launch/lease_command.h"
#include "launch/loader_command.h"
#include "launch/serve_command.h"
#include "launch/train_command.h"
#include "launch/tune_command.h"
#include "launch/wait_policy.h"
#include "launch/worker_command.h"

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
