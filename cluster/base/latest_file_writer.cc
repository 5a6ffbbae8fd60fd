// The newest-version file writer (latest_file_writer.h).
#include "cluster/base/latest_file_writer.h"

#include <glog/logging.h>

#include <algorithm>
#include <utility>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"

namespace flexmoe {

LatestFileWriter::LatestFileWriter(std::string path)
    : path_(std::move(path)), thread_([this] { Loop(); }) {}

LatestFileWriter::~LatestFileWriter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void LatestFileWriter::Submit(std::string contents) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = std::move(contents);
    has_pending_ = true;
    ++submitted_;
  }
  wake_.notify_all();
}

bool LatestFileWriter::Flush(std::chrono::steady_clock::duration timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t wanted = submitted_;
  return written_.wait_for(lock, timeout, [&] { return done_ >= wanted; });
}

uint64_t LatestFileWriter::writes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return writes_;
}

uint64_t LatestFileWriter::failures() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_;
}

double LatestFileWriter::longest_write_s() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return longest_write_s_;
}

void LatestFileWriter::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return has_pending_ || stopping_; });
    if (!has_pending_) return;  // stopping, nothing left to write
    std::string contents = std::move(pending_);
    has_pending_ = false;
    const uint64_t version = submitted_;
    lock.unlock();
    bool ok = true;
    const auto start = std::chrono::steady_clock::now();
    try {
      WriteFileAtomically(path_, contents);
    } catch (const Error& e) {
      ok = false;
      LOG(WARNING) << e.what();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    lock.lock();
    longest_write_s_ = std::max(longest_write_s_, seconds);
    ++(ok ? writes_ : failures_);
    done_ = version;
    written_.notify_all();
  }
}

}  // namespace flexmoe
