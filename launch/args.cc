// Command-line parsing (args.h).
#include "launch/args.h"

#include "cluster/base/error.h"

namespace flexmoe {

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

int Args::GetInt(const std::string& name, int fallback) const {
  auto it = flags.find(name);
  if (it == flags.end()) return fallback;
  try {
    size_t used = 0;
    int value = std::stoi(it->second, &used);
    if (used == it->second.size()) return value;
  } catch (const std::exception&) {
  }
  Fail(ErrorCode::kInvalidArgument, "--", name, ": '", it->second, "' is not an integer");
}

Args ParseArgs(int argc, char** argv, const std::set<std::string>& allowed,
               const std::set<std::string>& switches) {
  Args args;
  if (argc >= 2) args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      args.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos && name.rfind("set", 0) != 0) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (switches.count(name)) {
      if (has_value)
        Fail(ErrorCode::kInvalidArgument, args.command, ": --", name, " takes no value");
      args.flags[name] = "";
      continue;
    }
    if (name != "set" && !allowed.count(name)) {
      Fail(ErrorCode::kInvalidArgument, args.command, ": unknown flag --", name);
    }
    if (!has_value) {
      if (i + 1 >= argc)
        Fail(ErrorCode::kInvalidArgument, args.command, ": --", name, " needs a value");
      value = argv[++i];
    }
    if (name == "set") {
      args.overrides.push_back(value);
    } else {
      args.flags[name] = value;
    }
  }
  return args;
}

}  // namespace flexmoe
