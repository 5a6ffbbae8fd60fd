// One declaration per flexmoe command: its flags (name, value name, help, switch, value or
// list, required), its positional argument and its texts. args.h parses a command line with
// CLI11 from it, and builds `flexmoe COMMAND --help` and the `flexmoe help` overview from
// the same declaration, so a flag cannot be accepted without being documented or the
// reverse.
#pragma once

#include <string>
#include <vector>

namespace flexmoe {

struct FlagSpec {
  enum class Kind {
    kValue,   // --name VALUE (the last one given counts)
    kSwitch,  // --name, no value
    kList,    // --name [VALUE...]: the values up to the next flag, none too
  };
  std::string name;        // without "--"
  std::string value_name;  // FILE, N, DIR...; "" for a switch
  std::string help;        // may hold newlines; printed in the help's second column
  Kind kind = Kind::kValue;
  bool required = false;
};

struct CommandSpec {
  std::string name;
  // `flexmoe help`: the line under the command's synopsis.
  std::string summary;
  // `flexmoe COMMAND --help`: the paragraph under the synopsis.
  std::string description;
  // The positional argument (e.g. FILE, at most one), "" when the command takes none, and
  // whether it is required.
  std::string positional;
  std::string positional_help;
  bool positional_required = false;
  // Whether the command reads a config and so takes --set PATH=VALUE overrides.
  bool config_overrides = true;
  std::vector<FlagSpec> flags;
};

// Every command of the flexmoe binary, in the order `flexmoe help` lists them.
const std::vector<CommandSpec>& CommandSpecs();
// The command named `name`, or nullptr.
const CommandSpec* FindCommandSpec(const std::string& name);

// `LEAD COMMAND --config FILE [--workers N] ...`: required flags bare, the others in
// brackets, wrapped at 80 columns under the first flag; ends with a newline.
std::string Synopsis(const std::string& lead, const CommandSpec& spec);

// `flexmoe help`: every command's synopsis and summary, and the exit statuses.
std::string UsageText();

}  // namespace flexmoe
