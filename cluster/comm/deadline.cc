// Deadline resolution, poll pacing and the shared error messages of communicator calls.
#include "cluster/comm/deadline.h"

#include <algorithm>
#include <sstream>
#include <thread>

#include "cluster/base/error.h"

namespace flexmoe {

Deadline::Deadline(const CollectiveOptions& options, std::chrono::milliseconds default_timeout)
    : Deadline(options.timeout.count() >= 0 ? options.timeout : default_timeout) {}

Deadline::Deadline(std::chrono::milliseconds timeout)
    : timeout_(timeout), at_(Clock::now() + timeout) {}

std::string Deadline::Seconds() const {
  std::ostringstream out;
  out << static_cast<double>(timeout_.count()) / 1000.0;
  return out.str();
}

PollPacer::PollPacer() : start_(Deadline::Clock::now()) {}

void PollPacer::Pause() {
  constexpr auto kYieldPhase = std::chrono::milliseconds(20);
  constexpr auto kContended = std::chrono::microseconds(30);
  constexpr auto kMaxSleep = std::chrono::microseconds(20);
  const auto now = Deadline::Clock::now();
  if (!contended_ && now - start_ < kYieldPhase) {
    std::this_thread::yield();
    // A yield that took long gave the core to another runnable thread: the cores are
    // shared, and this rank's waiting takes them from work (its peers' included).
    contended_ = Deadline::Clock::now() - now > kContended;
    return;
  }
  sleep_ = sleep_.count() == 0 ? std::chrono::microseconds(5) : std::min(kMaxSleep, sleep_ * 2);
  std::this_thread::sleep_for(sleep_);
}

std::string DescribeCall(const std::string& op, const std::string& group, uint64_t seq) {
  std::ostringstream out;
  out << op << " on group " << group << " (seq " << seq << ")";
  return out.str();
}

void FailDeadline(const std::string& what, const Deadline& deadline) {
  Fail(ErrorCode::kDeadlineExceeded, what, " exceeded ", deadline.Seconds(), " s");
}

void FailUnusable(const std::string& what, const std::string& earlier_error) {
  Fail(ErrorCode::kFailedPrecondition, what,
       ": the group is unusable after an earlier error: ", earlier_error);
}

}  // namespace flexmoe
