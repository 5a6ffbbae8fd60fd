// Deadlines of communicator calls: the per-call timeout resolved against the group default,
// the poll pacing used while a request is in flight, and the messages every backend throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "cluster/comm/communicator.h"

namespace flexmoe {

// When a call must be done by, and the timeout it came from (for the message).
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  // `options.timeout` when set (>= 0), else `default_timeout`.
  Deadline(const CollectiveOptions& options, std::chrono::milliseconds default_timeout);
  explicit Deadline(std::chrono::milliseconds timeout);

  bool Passed() const { return Clock::now() >= at_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // The timeout in seconds as messages print it ("0.2", "30").
  std::string Seconds() const;

 private:
  std::chrono::milliseconds timeout_;
  Clock::time_point at_;
};

// Paces a polling loop: yields for the first 20 ms (low latency on a quiet machine; MPI
// progresses only inside MPI_Test, so long pauses would stall large transfers), then sleeps
// with a growing interval (5 us .. 20 us) to spare the CPU while a late peer is awaited.
// A yield that takes more than 30 us means another runnable thread got the core (the
// cores are shared: another job, or more ranks than cores): the loop then sleeps at once,
// since yielding would keep this rank runnable and take the core from the work it awaits
// (2 workers beside another job trained at 0.37x of one; docs/benchmarks.md, shared cores).
// The sleep stays short because a nonblocking collective advances one protocol round per
// MPI_Test on each side: with 100 us sleeps the gradient all-reduce of the ADNI-like model
// (0.8 MB, then a reduce to rank 0 and a broadcast) took 11-12 ms a step, with 20 us 6-6.6 ms.
class PollPacer {
 public:
  PollPacer();
  void Pause();

 private:
  Deadline::Clock::time_point start_;
  std::chrono::microseconds sleep_{0};
  bool contended_ = false;
};

// "<op> on group <group> (seq <seq>)": how every error names a call.
std::string DescribeCall(const std::string& op, const std::string& group, uint64_t seq);

// Throws kDeadlineExceeded "<what> exceeded <t> s" (NOTE [deadlines] in communicator.h).
[[noreturn]] void FailDeadline(const std::string& what, const Deadline& deadline);

// Throws kFailedPrecondition for a call on a group that an earlier error left unusable.
[[noreturn]] void FailUnusable(const std::string& what, const std::string& earlier_error);

}  // namespace flexmoe
