// One job per run directory: a lease file, `RUN/job.lease`, naming the holder (host, pid)
// and the wall-clock time it was last renewed. It works on shared file systems that do not
// honour flock: the lease is taken with link(2), which fails when the name exists (also on
// NFS), renewed by rename(2) of a complete file over it, and read whole. A lease that has not
// been renewed for longer than the timeout (or whose holder on this host is no longer alive)
// is stale and is taken over, and the caller is told so.
//
// Threading: a RunLease renews itself on a thread of its own until it is destroyed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace flexmoe {

struct LeaseHolder {
  std::string host;
  long pid = 0;
  double renewed_unix_s = 0;  // wall clock of the holder's last renewal
  std::string what;           // the holder's own words: "flexmoe train", "mpirun/train.sh"
};

// The lease file of `run_dir`.
std::string LeasePath(const std::string& run_dir);

// The holder named by a lease file's text; kDataLoss naming `path` when it is not one.
LeaseHolder ParseLease(const std::string& text, const std::string& path);
std::string FormatLease(const LeaseHolder& holder);

class RunLease {
 public:
  struct Options {
    std::string run_dir;
    double timeout_s = 4;  // stale after this long without a renewal
    std::string what;      // who holds it, for the message a refused job prints
    // Called (on the renewal thread) when another process has taken the lease over.
    std::function<void(const LeaseHolder& by)> on_lost;
  };

  // Takes the lease, or throws kInvalidArgument (exit 2) naming the live holder. A stale
  // lease is taken over; `taken_over` (when not null) gets the message that says so.
  explicit RunLease(Options options, std::string* taken_over = nullptr);
  // Stops renewing and removes the lease if it is still this process's.
  ~RunLease();
  RunLease(const RunLease&) = delete;
  RunLease& operator=(const RunLease&) = delete;

  const LeaseHolder& holder() const { return self_; }

 private:
  void Acquire(std::string* taken_over);
  // Writes this holder's lease over the file, if it is still this holder's; false if not.
  bool Renew();
  void RenewLoop();

  Options options_;
  std::string path_;
  LeaseHolder self_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> lost_{false};
  std::thread renewer_;
};

}  // namespace flexmoe
