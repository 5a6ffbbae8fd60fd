// A started part of one attempt of a job, as the supervisor sees it: the coordinator, the
// loaders, the workers. Each is one process on this host (flexmoe itself, mpirun or srun)
// that may stand for processes on several hosts. ProcessMember is the real one; the
// supervisor's unit tests drive fakes.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/base/child_process.h"

namespace flexmoe {

class Member {
 public:
  virtual ~Member() = default;
  virtual std::string name() const = 0;  // "coordinator", "loaders", "workers"
  // Its exit status once it has ended (never blocks): the code, or 128 + the signal.
  virtual std::optional<int> Poll() = 0;
  // What ended it, for messages: "exited 1", "killed by signal 9 (Killed)".
  virtual std::string Describe() = 0;
  // Whether it is stopped (SIGSTOP, a debugger): alive, and answering nobody.
  virtual bool Stopped() = 0;
  virtual void Signal(int signal) = 0;
  // SIGKILL to it and everything it started on this host.
  virtual void Kill() = 0;
  // The rest of each of its "PREFIX..." lines once there are `count` of them (its
  // members' "listening on ADDR"), in the order they came: kUnavailable when it ends
  // first, kDeadlineExceeded after timeout_s (both quote its log).
  virtual std::vector<std::string> WaitForLines(const std::string& prefix, int count,
                                                double timeout_s) = 0;
  // Its last error line (flexmoe's "...: error: ..."), else its last line; "" when it
  // wrote nothing: why it did not start.
  virtual std::string LastError() = 0;
};

// A member that is a child process of this one, its output in `logs` (one file, or one per
// host as srun --output=%N writes them); with no logs its output is the supervisor's own.
class ProcessMember : public Member {
 public:
  ProcessMember(const ChildSpec& spec, std::vector<std::string> logs);
  std::string name() const override { return child_.name(); }
  std::optional<int> Poll() override;
  std::string Describe() override { return child_.Describe(); }
  bool Stopped() override;
  void Signal(int signal) override { child_.Signal(signal); }
  void Kill() override;
  std::vector<std::string> WaitForLines(const std::string& prefix, int count,
                                        double timeout_s) override;
  std::string LastError() override;
  pid_t pid() const { return child_.pid(); }

 private:
  std::vector<std::string> Lines() const;  // its logs' lines since it started, file by file
  std::vector<std::string> logs_;
  std::vector<uintmax_t> starts_;  // each log's size when it started
  ChildProcess child_;
};

}  // namespace flexmoe
