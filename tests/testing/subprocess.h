// Runs a command in a subprocess and captures its exit status and output (system tests).
#pragma once

#include <string>
#include <vector>

namespace flexmoe::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// In a forked child: a process group of its own, stdout and stderr onto `output_fd`, `env`
// ("NAME=value") added, then argv (no shell); exits 127 when argv cannot be run.
[[noreturn]] void ExecChild(const std::vector<std::string>& argv, int output_fd,
                            const std::vector<std::string>& env);

// Runs argv (no shell) with `env` ("NAME=value") added to the environment, waits at most
// timeout_s seconds (then kills it and reports -1).
CommandResult RunCommand(const std::vector<std::string>& argv, double timeout_s = 120,
                         const std::vector<std::string>& env = {});

}  // namespace flexmoe::testing
