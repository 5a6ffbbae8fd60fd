// Command-line parsing (args.h).
#include "launch/args.h"

#include <algorithm>
#include <vector>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string ClosestFlag(const std::string& name, const std::set<std::string>& known) {
  std::string best;
  size_t best_distance = std::max<size_t>(3, name.size() / 2) + 1;
  for (const std::string& k : known) {
    const size_t d = EditDistance(name, k);
    if (d < best_distance || (k.rfind(name, 0) == 0 && !name.empty())) {
      best = k;
      best_distance = k.rfind(name, 0) == 0 ? 0 : d;
    }
  }
  return best;
}

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
      std::set<std::string> known = allowed;
      known.insert(switches.begin(), switches.end());
      known.insert({"set", "help"});
      const std::string closest = ClosestFlag(name, known);
      Fail(ErrorCode::kInvalidArgument, args.command, ": unknown flag --", name,
           closest.empty() ? std::string() : " (did you mean --" + closest + "?)", "; see flexmoe ",
           args.command, " --help");
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
