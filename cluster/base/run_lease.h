// One job per run directory: a lease file, `RUN/job.lease`, naming the holder (host, pid,
// what) and its generation (a random nonce), and a renewal counter beside it in
// `RUN/job.lease.beat-<nonce>`, which only that holder writes. It works on shared file
// systems that do not honour flock: the lease is taken with link(2), which fails when the
// name exists (also on NFS), and is never rewritten while held; renewals rename(2) a new
// counter over the holder's own beat file. A contender judges a lease by its own monotonic
// clock, never by comparing wall clocks across hosts: the lease is stale when its counter
// has not changed for `timeout_s` while the contender watched (or at once when its holder
// is a process of this host that has ended). A takeover moves the lease aside and links a
// new one of another generation; the old holder's late renewals go to its own beat file, so
// they cannot overwrite the takeover, and its next renewal finds the lease no longer its own
// and reports it lost.
//
// Threading: a RunLease renews itself on a thread of its own until it is destroyed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace flexmoe {

struct LeaseHolder {
  std::string host;
  long pid = 0;
  std::string what;   // the holder's own words: "flexmoe train", `flexmoe lease --what`
  std::string nonce;  // the generation: names its beat file ("" in a hand-written lease)
};

// The lease file of `run_dir`, and the beat file (renewal counter) of a holder's lease.
std::string LeasePath(const std::string& run_dir);
std::string LeaseBeatPath(const std::string& run_dir, const LeaseHolder& holder);

// The holder named by a lease file's text; kDataLoss naming `path` when it is not one.
LeaseHolder ParseLease(const std::string& text, const std::string& path);
std::string FormatLease(const LeaseHolder& holder);

class RunLease {
 public:
  struct Options {
    std::string run_dir;
    double timeout_s = 4;  // stale after this long without a renewal (renewed 4 times as often)
    std::string what;      // who holds it, for the message a refused job prints
    // Called (on the renewal thread) when another process has taken the lease over.
    std::function<void(const LeaseHolder& by)> on_lost;
  };

  // Takes the lease, or throws kInvalidArgument (exit 2) naming the live holder. A lease
  // held by another is watched for up to timeout_s: taken over when its counter stood still
  // (`taken_over`, when not null, gets the message that says so), refused as soon as it
  // moves.
  explicit RunLease(Options options, std::string* taken_over = nullptr);
  // Stops renewing and removes the lease if it is still this process's.
  ~RunLease();
  RunLease(const RunLease&) = delete;
  RunLease& operator=(const RunLease&) = delete;

  const LeaseHolder& holder() const { return self_; }

 private:
  void Acquire(std::string* taken_over);
  // Why `held` is stale, after watching it for up to timeout_s; "" when it is live (its
  // counter moved: refused) and "changed" when the lease itself changed meanwhile.
  std::string Watch(const LeaseHolder& held);
  // Counts one renewal in this holder's beat file if the lease is still this holder's;
  // false (and on_lost) if not.
  bool Renew();
  void RenewLoop();

  Options options_;
  std::string path_;
  LeaseHolder self_;
  std::string beat_path_;
  int64_t renewals_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> lost_{false};
  std::thread renewer_;
};

}  // namespace flexmoe
