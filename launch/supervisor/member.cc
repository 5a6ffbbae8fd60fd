// The real member: a child process and its logs (member.h).
#include "launch/supervisor/member.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cluster/base/error.h"
#include "launch/supervisor/processes.h"

namespace flexmoe {
namespace {

uintmax_t SizeOf(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

}  // namespace

ProcessMember::ProcessMember(const ChildSpec& spec, std::vector<std::string> logs)
    : logs_(std::move(logs)),
      starts_([this] {
        // An earlier attempt's lines stay in a log; this member's start after them.
        std::vector<uintmax_t> starts;
        for (const std::string& log : logs_) starts.push_back(SizeOf(log));
        return starts;
      }()),
      child_(spec) {}

std::optional<int> ProcessMember::Poll() {
  child_.Ended();
  return child_.status();
}

bool ProcessMember::Stopped() { return !Poll() && ProcessState(child_.pid()) == 'T'; }

void ProcessMember::Kill() {
  if (!Poll()) KillTree(child_.pid());
}

std::vector<std::string> ProcessMember::Lines() const {
  std::vector<std::string> lines;
  for (size_t i = 0; i < logs_.size(); ++i) {
    std::ifstream in(logs_[i]);
    in.seekg(static_cast<std::streamoff>(SizeOf(logs_[i]) >= starts_[i] ? starts_[i] : 0));
    std::string line;
    // A line without its newline may still be being written.
    while (std::getline(in, line) && !in.eof()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> ProcessMember::WaitForLines(const std::string& prefix, int count,
                                                     double timeout_s) {
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    std::vector<std::string> found;
    for (const std::string& line : Lines()) {
      if (line.rfind(prefix, 0) == 0) found.push_back(line.substr(prefix.size()));
    }
    if (static_cast<int>(found.size()) >= count) {
      found.resize(count);
      return found;
    }
    if (Poll()) {
      Fail(ErrorCode::kUnavailable, "the ", name(), " ", Describe(),
           " before it was ready: ", LastError());
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::duration<double>(timeout_s)) {
      Fail(ErrorCode::kDeadlineExceeded, "the ", name(), " did not say '", prefix, "' ", count,
           " time(s) within ", timeout_s, " s: ", LastError());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string ProcessMember::LastError() {
  const std::vector<std::string> lines = Lines();
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->find(": error: ") != std::string::npos) return *it;
  }
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->find_first_not_of(" \t") != std::string::npos) return *it;
  }
  return "";
}

}  // namespace flexmoe
