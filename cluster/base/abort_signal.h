// AbortSignal: how a thread that learned the job must end (the coordinator client, on a
// member's death or the coordinator's loss) tells the thread blocked in a collective. The
// communicator's wait loops check it between polls and throw kAborted with its reason.
// Thread-safe.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

namespace flexmoe {

class AbortSignal {
 public:
  // The first reason stays; `exit_status` is what the process should exit with.
  void Raise(const std::string& reason, int exit_status = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    if (raised_.load()) return;
    reason_ = reason;
    exit_status_ = exit_status;
    raised_.store(true);
  }
  int exit_status() const {
    std::lock_guard<std::mutex> lock(mu_);
    return exit_status_;
  }
  bool raised() const { return raised_.load(std::memory_order_relaxed); }
  std::string reason() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reason_;
  }

 private:
  std::atomic<bool> raised_{false};
  mutable std::mutex mu_;
  std::string reason_;
  int exit_status_ = 1;
};

}  // namespace flexmoe
