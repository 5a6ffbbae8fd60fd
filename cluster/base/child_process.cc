// Spawning, polling and log-watching of the launcher's children (child_process.h).
#include "cluster/base/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cluster/base/error.h"

extern char** environ;

namespace flexmoe {

ChildProcess::ChildProcess(const ChildSpec& spec) : spec_(spec) {
  // An earlier attempt's lines stay in the log; this child's start after them.
  std::error_code ec;
  if (!spec_.log.empty() && std::filesystem::exists(spec_.log, ec)) {
    log_start_ = std::filesystem::file_size(spec_.log, ec);
  }
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  if (!spec_.log.empty()) {
    posix_spawn_file_actions_addopen(&files, 1, spec_.log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&files, 1, 2);
  }
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, spec_.group);
  // The child starts with no signal blocked and the default action for the ones the
  // launcher catches.
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE}) sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  std::vector<char*> argv;
  for (const std::string& a : spec_.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int error = posix_spawnp(&pid_, argv[0], &files, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    Fail(ErrorCode::kUnavailable, "cannot start the ", spec_.name, " (", spec_.argv[0],
         "): ", std::strerror(error));
  }
}

bool ChildProcess::Ended() {
  if (status_) return true;
  int raw = 0;
  const pid_t got = ::waitpid(pid_, &raw, WNOHANG);
  if (got != pid_) return false;
  raw_status_ = raw;
  status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + (WIFSIGNALED(raw) ? WTERMSIG(raw) : 0);
  return true;
}

std::string ChildProcess::Describe() const {
  if (!status_) return "running";
  if (WIFSIGNALED(raw_status_)) {
    return "killed by signal " + std::to_string(WTERMSIG(raw_status_)) + " (" +
           strsignal(WTERMSIG(raw_status_)) + ")";
  }
  return "exited " + std::to_string(*status_);
}

void ChildProcess::Signal(int signal) const {
  if (!status_) ::kill(pid_, signal);
}

std::string ChildProcess::LogTail(int lines) const {
  std::ifstream in(spec_.log);
  in.seekg(static_cast<std::streamoff>(log_start_));
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& l : tail) out += "  " + l + "\n";
  return out;
}

std::string ChildProcess::WaitForLogLine(const std::string& prefix, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (true) {
    std::ifstream in(spec_.log);
    in.seekg(static_cast<std::streamoff>(log_start_));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(prefix, 0) == 0 && !in.eof()) return line.substr(prefix.size());
    }
    if (Ended()) {
      Fail(ErrorCode::kUnavailable, "the ", spec_.name, " ", Describe(), " before it was ready; ",
           spec_.log, " ends:\n", LogTail(8));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Fail(ErrorCode::kDeadlineExceeded, "the ", spec_.name, " did not say '", prefix, "' within ",
           timeout_s, " s; ", spec_.log, " ends:\n", LogTail(8));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace flexmoe
