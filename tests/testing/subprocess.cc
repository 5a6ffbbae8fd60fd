// fork/exec with a pipe for the output and a deadline on the wait.
#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

namespace flexmoe::testing {

void ExecChild(const std::vector<std::string>& argv, int output_fd,
               const std::vector<std::string>& env) {
  ::setpgid(0, 0);
  ::dup2(output_fd, 1);
  ::dup2(output_fd, 2);
  ::close(output_fd);
  for (const std::string& assignment : env) ::putenv(const_cast<char*>(assignment.c_str()));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  ::_exit(127);
}

CommandResult RunCommand(const std::vector<std::string>& argv, double timeout_s,
                         const std::vector<std::string>& env) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ExecChild(argv, fds[1], env);  // a timeout kills mpirun and its ranks alike
  }
  ::close(fds[1]);
  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  char buffer[4096];
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready <= 0) continue;
    ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    result.output.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = timed_out ? -1 : (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return result;
}

}  // namespace flexmoe::testing
