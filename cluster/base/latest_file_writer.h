// A file rewritten with the newest of many versions, off the caller's thread: Submit hands
// over the contents and returns at once; a thread of the writer's own writes them atomically
// (WriteFileAtomically: temporary name, fsync, rename), and versions submitted while a write
// runs collapse into the newest one. The coordinator writes job.json through it, so that a
// slow disk (an fsync of seconds on a shared file system) never delays the thread that
// judges heartbeats.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace flexmoe {

class LatestFileWriter {
 public:
  explicit LatestFileWriter(std::string path);
  // Writes what is still pending, then joins the thread.
  ~LatestFileWriter();
  LatestFileWriter(const LatestFileWriter&) = delete;
  LatestFileWriter& operator=(const LatestFileWriter&) = delete;

  // Never waits for the disk.
  void Submit(std::string contents);
  // Waits until every version submitted so far is written (or superseded by a written
  // newer one); false when `timeout` passed first.
  bool Flush(std::chrono::steady_clock::duration timeout);
  // Versions written, and write failures (each logged with the path and the reason).
  uint64_t writes() const;
  uint64_t failures() const;
  // The longest write (temporary file, fsync, rename) so far, in seconds.
  double longest_write_s() const;

 private:
  void Loop();

  const std::string path_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, written_;
  std::string pending_;
  bool has_pending_ = false, stopping_ = false;
  uint64_t submitted_ = 0, done_ = 0;  // version numbers
  uint64_t writes_ = 0, failures_ = 0;
  double longest_write_s_ = 0;
  std::thread thread_;
};

}  // namespace flexmoe
