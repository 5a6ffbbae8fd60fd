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
  // The first reason stays.
  void Raise(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (raised_.load()) return;
    reason_ = reason;
    raised_.store(true);
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
};

}  // namespace flexmoe
