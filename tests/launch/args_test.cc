// The command-line declarations (launch/command_spec.h) parsed by CLI11 (launch/args.h):
// every declared flag is in its command's help and parses, values and lists land where the
// commands read them, and what is not declared is refused naming the closest flag.
#include "launch/cli/args.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cluster/base/error.h"
#include "launch/cli/command_spec.h"

namespace flexmoe {
namespace {

// ParseArgs on `flexmoe COMMAND ARGS...`.
Args Parse(const std::string& command, std::vector<std::string> args) {
  args.insert(args.begin(), {"flexmoe", command});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseArgs(static_cast<int>(argv.size()), argv.data());
}

std::string ParseError(const std::string& command, const std::vector<std::string>& args) {
  try {
    Parse(command, args);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << command << ": no error";
  return "";
}

TEST(ArgsTest, EveryDeclaredFlagIsInTheHelpAndParses) {
  ASSERT_EQ(CommandSpecs().size(), 15u);
  for (const CommandSpec& spec : CommandSpecs()) {
    const std::string help = CommandHelp(spec);
    EXPECT_EQ(help.rfind("usage: flexmoe " + spec.name, 0), 0u) << help;
    EXPECT_NE(UsageText().find("  " + spec.name + " "), std::string::npos) << spec.name;
    std::vector<std::string> line;
    for (const FlagSpec& f : spec.flags) {
      const std::string shown = "--" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
      EXPECT_NE(help.find("  " + shown), std::string::npos) << shown << "\n" << help;
      line.push_back("--" + f.name);
      if (f.kind != FlagSpec::Kind::kSwitch) line.push_back("v-" + f.name);
    }
    if (spec.positional_required) line.push_back("arg");
    EXPECT_EQ(help.find("--set") != std::string::npos, spec.config_overrides) << help;
    const Args args = Parse(spec.name, line);
    for (const FlagSpec& f : spec.flags) {
      EXPECT_TRUE(args.Has(f.name)) << spec.name << " --" << f.name;
      if (f.kind == FlagSpec::Kind::kValue) EXPECT_EQ(args.Get(f.name), "v-" + f.name);
      if (f.kind == FlagSpec::Kind::kList) {
        EXPECT_EQ(args.GetList(f.name), std::vector<std::string>{"v-" + f.name});
      }
    }
  }
}

TEST(ArgsTest, ValuesSwitchesListsAndOverrides) {
  Args a = Parse("train", {"--config", "c.textproto", "--workers=3", "--set", "a.b=1", "--resume",
                           "--set=c.d=x=y", "--workers", "4"});
  EXPECT_EQ(a.command, "train");
  EXPECT_EQ(a.Get("config"), "c.textproto");
  EXPECT_EQ(a.GetInt("workers", 1), 4);  // the last one given counts
  EXPECT_TRUE(a.Has("resume"));
  EXPECT_FALSE(a.Has("threads"));
  EXPECT_EQ(a.GetInt("threads", 7), 7);
  EXPECT_EQ(a.overrides, (std::vector<std::string>{"a.b=1", "c.d=x=y"}));
  // A list takes values up to the next flag; with none it is still given.
  Args p =
      Parse("predict", {"--input", "i", "--ensemble", "r1", "r2", "--calibrated", "--out", "o"});
  EXPECT_EQ(p.GetList("ensemble"), (std::vector<std::string>{"r1", "r2"}));
  EXPECT_TRUE(p.Has("calibrated"));
  EXPECT_EQ(p.Get("out"), "o");
  p = Parse("predict", {"--checkpoint", "run", "--ensemble", "--input", "i", "--out", "o"});
  EXPECT_TRUE(p.Has("ensemble"));
  EXPECT_TRUE(p.GetList("ensemble").empty());
  // The positional argument.
  EXPECT_EQ(Parse("validate-config", {"c.textproto"}).positional,
            std::vector<std::string>{"c.textproto"});
  EXPECT_EQ(Parse("inspect-checkpoint", {"dir"}).positional, std::vector<std::string>{"dir"});
}

TEST(ArgsTest, WhatIsNotDeclaredIsRefusedByName) {
  EXPECT_NE(ParseError("train", {"--config", "c", "--worker", "2"})
                .find("train: unknown flag --worker (did you mean --workers?)"),
            std::string::npos);
  EXPECT_NE(ParseError("train", {"--config", "c", "--max-restart=1"})
                .find("unknown flag --max-restart (did you mean --max-restarts?)"),
            std::string::npos);
  EXPECT_NE(ParseError("eval", {"--checkpoint", "c", "--set", "a=1"}).find("unknown flag --set"),
            std::string::npos);
  EXPECT_NE(ParseError("train", {"--workers", "2"}).find("--config is required"),
            std::string::npos);
  EXPECT_NE(ParseError("tune", {"--config", "c", "--space", "s", "--out", "o"})
                .find("--trials is required"),
            std::string::npos);
  EXPECT_NE(ParseError("train", {"--config"}).find("train: --config: 1 required FILE missing"),
            std::string::npos);
  EXPECT_NE(ParseError("train", {"--config", "c", "--resume=1"})
                .find("train: resume was given a disallowed flag override"),
            std::string::npos);
  // A misspelt required flag is named as unknown, not reported as missing.
  EXPECT_NE(
      ParseError("train", {"--conifg", "c"}).find("unknown flag --conifg (did you mean --config?)"),
      std::string::npos);
  EXPECT_NE(ParseError("inspect-checkpoint", {"--x"}).find("unknown flag --x"), std::string::npos);
  EXPECT_NE(ParseError("inspect-checkpoint", {"a", "b"}).find("unexpected argument 'b'"),
            std::string::npos);
  EXPECT_NE(ParseError("inspect-checkpoint", {}).find("DIR is required"), std::string::npos);
  EXPECT_NE(ParseError("synth", {"--config", "c", "stray"}).find("unexpected argument 'stray'"),
            std::string::npos);
  try {
    Parse("train", {"--config", "c", "--threads", "two"}).GetInt("threads", 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--threads: 'two' is not an integer"), std::string::npos);
  }
}

TEST(ArgsTest, ClosestFlag) {
  EXPECT_EQ(ClosestFlag("worker", {"workers", "threads"}), "workers");
  EXPECT_EQ(ClosestFlag("thread", {"workers", "threads"}), "threads");
  EXPECT_EQ(ClosestFlag("zzzzzzzzzz", {"workers", "threads"}), "");
}

}  // namespace
}  // namespace flexmoe
