// A child process for system tests: its own process group (so that mpirun and its ranks are
// signalled and killed together), stdout and stderr into a log file, and a wait with a
// deadline. Killed at scope exit.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace flexmoe::testing {

class Process {
 public:
  // Starts argv (no shell) with `env` ("NAME=value") added; output goes to `log_path`.
  Process(const std::vector<std::string>& argv, const std::string& log_path,
          const std::vector<std::string>& env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // The exit status (128 + N for signal N) once it ends within timeout_s, else -1.
  int Wait(double timeout_s);
  bool running();
  // Signals the process (only, not its group).
  void Signal(int signal);
  std::string Log() const;
  // Waits until the log has a line starting with `prefix`; returns the rest of it ("" at
  // timeout).
  std::string WaitForLine(const std::string& prefix, double timeout_s) const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  int status_ = -1;
};

}  // namespace flexmoe::testing
