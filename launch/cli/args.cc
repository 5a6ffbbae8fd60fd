// Command-line parsing (args.h): a CLI11 App built from the command's declaration parses
// the line and formats the help; what CLI11 leaves over is reported as today's unknown-flag
// error with the closest known flag.
#include "launch/cli/args.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
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

std::vector<std::string> Args::GetList(const std::string& name) const {
  auto it = lists.find(name);
  return it == lists.end() ? std::vector<std::string>() : it->second;
}

namespace {

// `flexmoe COMMAND --help` as flexmoe prints it: the synopsis first, then the description,
// then the flags in two columns.
class HelpFormatter : public CLI::Formatter {
 public:
  explicit HelpFormatter(const CommandSpec& spec) : spec_(spec) { column_width(24); }

  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode mode) const override {
    return Synopsis("usage: flexmoe ", spec_) + make_description(app) + make_positionals(app) +
           make_groups(app, mode);
  }
  std::string make_description(const CLI::App* app) const override {
    return app->get_description() + "\n";
  }
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (opt->get_type_size() == 0) return "";
    const bool list = opt->get_expected_max() == CLI::detail::expected_max_vector_size &&
                      opt->get_allow_extra_args();
    return " " + opt->get_type_name() + (list ? "..." : "");
  }

 private:
  const CommandSpec& spec_;
};

// A CLI11 App declaring `spec`'s flags, bound to its own storage.
class SpecApp {
 public:
  explicit SpecApp(const CommandSpec& spec) : app_(spec.description, "flexmoe " + spec.name) {
    app_.formatter(std::make_shared<HelpFormatter>(spec));
    app_.set_help_flag("--help", "this text");
    app_.allow_extras();
    for (const FlagSpec& f : spec.flags) Add(f);
    if (spec.config_overrides) {
      app_.add_option("--set", overrides_,
                      "override one config field (repeatable), e.g.\n"
                      "--set training.epochs=3")
          ->type_name("PATH=VALUE")
          ->allow_extra_args(false);
    }
    if (!spec.positional.empty()) {
      CLI::Option* opt = app_.add_option(spec.positional, positional_, spec.positional_help);
      opt->type_name("");
      if (spec.positional_required) opt->required();
    }
  }

  CLI::App& app() { return app_; }

  // What was given, as Args; an extra argument is an error naming it.
  Args Collect(const CommandSpec& spec) {
    Args args;
    args.command = spec.name;
    for (const FlagSpec& f : spec.flags) {
      const CLI::Option* opt = app_.get_option("--" + f.name);
      if (opt->count() == 0) continue;
      if (f.kind == FlagSpec::Kind::kList) {
        // CLI11 stores a list given no value as one empty string.
        std::vector<std::string>& list = args.lists[f.name];
        for (const std::string& v : lists_.at(f.name)) {
          if (!v.empty()) list.push_back(v);
        }
      } else {
        args.flags[f.name] = f.kind == FlagSpec::Kind::kSwitch ? "" : values_.at(f.name);
      }
    }
    args.overrides = overrides_;
    if (!positional_.empty()) args.positional.push_back(positional_);
    RefuseExtras(spec);
    return args;
  }

  // An argument nothing declared is an error naming it (and the closest flag); checked
  // before CLI11's own errors too, so `--conifg` is not reported as a missing --config.
  void RefuseExtras(const CommandSpec& spec) {
    for (const std::string& extra : app_.remaining()) RefuseExtra(spec, extra);
  }

 private:
  void Add(const FlagSpec& f) {
    const std::string name = "--" + f.name;
    CLI::Option* opt = nullptr;
    switch (f.kind) {
      case FlagSpec::Kind::kSwitch:
        opt = app_.add_flag(name, switches_[f.name], f.help)->disable_flag_override();
        break;
      case FlagSpec::Kind::kValue:
        opt = app_.add_option(name, values_[f.name], f.help)
                  ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        break;
      case FlagSpec::Kind::kList:
        // --ensemble RUN_DIR alone, or --checkpoint RUN_DIR --ensemble: zero values too.
        opt = app_.add_option(name, lists_[f.name], f.help)
                  ->expected(0, CLI::detail::expected_max_vector_size);
        break;
    }
    if (!f.value_name.empty()) opt->type_name(f.value_name);
    if (f.required) opt->required();
  }

  static void RefuseExtra(const CommandSpec& spec, const std::string& extra) {
    if (extra.rfind("--", 0) != 0) {
      Fail(ErrorCode::kInvalidArgument, spec.name, ": unexpected argument '", extra,
           "'; see flexmoe ", spec.name, " --help");
    }
    const std::string name = extra.substr(2, extra.find('=') - 2);
    std::set<std::string> known = {"help"};
    for (const FlagSpec& f : spec.flags) known.insert(f.name);
    if (spec.config_overrides) known.insert("set");
    const std::string closest = ClosestFlag(name, known);
    Fail(ErrorCode::kInvalidArgument, spec.name, ": unknown flag --", name,
         closest.empty() ? std::string() : " (did you mean --" + closest + "?)", "; see flexmoe ",
         spec.name, " --help");
  }

  CLI::App app_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> switches_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::vector<std::string> overrides_;
  std::string positional_;
};

// CLI11's message, with the command in front (its messages name the flag).
[[noreturn]] void FailParse(const CommandSpec& spec, const CLI::ParseError& e) {
  Fail(ErrorCode::kInvalidArgument, spec.name, ": ", e.what(), "; see flexmoe ", spec.name,
       " --help");
}

}  // namespace

Args ParseArgs(const CommandSpec& spec, int argc, char** argv) {
  SpecApp parser(spec);
  // argv[0] is the program and argv[1] the command: CLI11 reads what follows.
  std::vector<std::string> rest;
  for (int i = argc - 1; i >= 2; --i) rest.emplace_back(argv[i]);
  try {
    parser.app().parse(rest);
  } catch (const CLI::ParseError& e) {
    parser.RefuseExtras(spec);
    FailParse(spec, e);
  }
  return parser.Collect(spec);
}

Args ParseArgs(int argc, char** argv) {
  const CommandSpec* spec = argc >= 2 ? FindCommandSpec(argv[1]) : nullptr;
  if (spec == nullptr) {
    Fail(ErrorCode::kInternal, "no declaration for the command '", argc >= 2 ? argv[1] : "", "'");
  }
  return ParseArgs(*spec, argc, argv);
}

std::string CommandHelp(const CommandSpec& spec) {
  SpecApp parser(spec);
  return parser.app().help();
}

}  // namespace flexmoe
