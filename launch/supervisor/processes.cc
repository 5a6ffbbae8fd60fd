// /proc reading, tree kills and short commands with deadlines (processes.h).
#include "launch/supervisor/processes.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "cluster/base/child_process.h"
#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// A process's state and parent from /proc/PID/stat: "pid (comm) state ppid ...", where comm
// may hold spaces, so it is parsed after the last ')'.
struct ProcStat {
  char state = 0;
  long ppid = 0;
};
bool ReadProcStat(const std::string& pid, ProcStat* out) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat;
  std::getline(in, stat);
  const size_t close = stat.rfind(')');
  return close != std::string::npos &&
         std::sscanf(stat.c_str() + close + 1, " %c %ld", &out->state, &out->ppid) == 2;
}

// Every process's parent, read once.
std::multimap<pid_t, pid_t> ChildrenByParent() {
  std::multimap<pid_t, pid_t> children;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    ProcStat stat;
    if (ReadProcStat(name, &stat)) {
      children.emplace(static_cast<pid_t>(stat.ppid), static_cast<pid_t>(std::stol(name)));
    }
  }
  return children;
}

}  // namespace

char ProcessState(pid_t pid) {
  ProcStat stat;
  return ReadProcStat(std::to_string(pid), &stat) ? stat.state : 0;
}

std::vector<pid_t> DescendantsOf(pid_t pid) {
  const std::multimap<pid_t, pid_t> children = ChildrenByParent();
  std::vector<pid_t> out;
  std::vector<pid_t> frontier = {pid};
  while (!frontier.empty()) {
    const pid_t parent = frontier.back();
    frontier.pop_back();
    auto [begin, end] = children.equal_range(parent);
    for (auto it = begin; it != end; ++it) {
      out.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return out;
}

void KillTree(pid_t pid) {
  if (pid <= 0) return;
  const std::vector<pid_t> tree = DescendantsOf(pid);
  ::kill(pid, SIGKILL);
  for (pid_t p : tree) ::kill(p, SIGKILL);
}

CommandResult RunCommandWithDeadline(const std::vector<std::string>& argv, double timeout_s) {
  char path[] = "/tmp/flexmoe-command-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) Fail(ErrorCode::kUnavailable, "cannot create a temporary file for ", argv[0]);
  ::close(fd);
  CommandResult result;
  {
    ChildProcess child(ChildSpec{argv[0], argv, path, 0});
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    while (!child.Ended() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (child.Ended()) {
      result.ran = true;
      result.status = *child.status();
    } else {
      KillTree(child.pid());
      while (!child.Ended()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  result.output = text.str();
  std::filesystem::remove(path);
  return result;
}

}  // namespace flexmoe
