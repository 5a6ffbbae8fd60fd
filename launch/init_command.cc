// The init subcommand (init_command.h): the config written atomically, never over an
// existing file unless --force.
#include "launch/init_command.h"

#include <filesystem>
#include <iostream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "data_loader/config_init.h"
#include "launch/cli/args.h"

namespace flexmoe {

int InitCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  InitOptions options;
  options.input = args.Get("input");
  options.modalities_json = args.Get("modalities");
  options.groups = args.GetList("group");
  options.id_column = args.Get("id", options.id_column);
  options.label_column = args.Get("label", options.label_column);
  options.exclude = args.GetList("exclude");
  options.splits_file = args.Get("splits");
  options.prepared_dir = args.Get("prepared-dir");
  const std::string out = args.Get("out");
  if (std::filesystem::exists(out) && !args.Has("force")) {
    Fail(ErrorCode::kInvalidArgument, "init: ", out, " exists (--force replaces it)");
  }
  const InitResult result = InitConfig(options);
  WriteFileAtomically(out, result.text);
  std::cout << "wrote " << out << ": " << result.config.data().modalities_size() << " modalities, "
            << result.rows << " rows";
  if (!result.unlisted.empty()) {
    std::cout << "; " << result.unlisted.size() << " columns in no modality excluded (";
    for (size_t i = 0; i < result.unlisted.size() && i < 8; ++i) {
      std::cout << (i ? ", " : "") << result.unlisted[i];
    }
    std::cout << (result.unlisted.size() > 8 ? ", ..." : "") << ")";
  }
  std::cout << "\n";
  return 0;
}

}  // namespace flexmoe
