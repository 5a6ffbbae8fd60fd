// Child processes (the launcher's coordinator, loader and mpirun; gnuplot for reports): started
// with posix_spawn into the job's process group, output into a log file or the launcher's own,
// polled without blocking, and waited for with a deadline.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flexmoe {

struct ChildSpec {
  std::string name;               // "coordinator", "loader", "workers"
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  std::string log;                // stdout and stderr into this file; empty: the launcher's
  pid_t group = 0;                // the process group to join; 0: a new one, led by the child
};

class ChildProcess {
 public:
  // kUnavailable naming the program when it cannot be started.
  explicit ChildProcess(const ChildSpec& spec);

  const std::string& name() const { return spec_.name; }
  const std::string& log() const { return spec_.log; }
  pid_t pid() const { return pid_; }
  // Reaps the child if it ended (never blocks); true once it has.
  bool Ended();
  // Its exit status once ended: the code, or 128 + the signal that ended it.
  std::optional<int> status() const { return status_; }
  // What ended it, for messages: "exited 0", "killed by signal 9".
  std::string Describe() const;
  void Signal(int signal) const;
  // Waits for a line of its log starting with `prefix` and returns the rest of the line:
  // kDeadlineExceeded after timeout_s, or kUnavailable when the child ends first (both
  // naming the child and quoting its log's last lines).
  std::string WaitForLogLine(const std::string& prefix, double timeout_s);
  // The last `lines` lines of its log.
  std::string LogTail(int lines) const;

 private:
  ChildSpec spec_;
  pid_t pid_ = -1;
  std::optional<int> status_;
  int raw_status_ = 0;
  uintmax_t log_start_ = 0;  // the log's size when the child started
};

}  // namespace flexmoe
