// Command-line parsing for the flexmoe subcommands: `flexmoe COMMAND [--flag value]...`
// with repeatable --set overrides. Unknown flags are errors (exit 2) naming the closest
// known flag.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace flexmoe {

struct Args {
  std::string command;
  std::map<std::string, std::string> flags;  // --name value
  std::vector<std::string> overrides;        // --set path=value, in order
  std::vector<std::string> positional;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  int GetInt(const std::string& name, int fallback) const;
};

// Parses argv; `allowed` lists the flags (without "--") the command accepts besides --set,
// `switches` the flags that take no value (Has() tells whether they were given).
// Throws kInvalidArgument for an unknown flag or a flag without its value.
Args ParseArgs(int argc, char** argv, const std::set<std::string>& allowed,
               const std::set<std::string>& switches = {});

// The known flag closest to `name` (a prefix of it, or within a few edits), or "".
std::string ClosestFlag(const std::string& name, const std::set<std::string>& known);

}  // namespace flexmoe
