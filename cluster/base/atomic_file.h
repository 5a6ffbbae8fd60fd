// Atomic output: files and whole directories are written under a temporary name and
// renamed into place on Commit(), so a failure never leaves a half-written result and
// never damages what was there before.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace flexmoe {

// A file written to "<path>.tmp-<pid>" and renamed to `path` by Commit(). Not thread-safe.
// Destroying it uncommitted removes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void Write(const void* data, size_t size);
  void Write(std::string_view text) { Write(text.data(), text.size()); }
  // Bytes written so far, and their CRC32C.
  uint64_t size() const { return size_; }
  uint32_t crc32c() const { return crc_; }
  // Flushes, fsyncs and renames into place. Throws flexmoe::Error on failure.
  void Commit();

 private:
  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  uint64_t size_ = 0;
  uint32_t crc_ = 0;
};

// Writes `contents` to `path` atomically.
void WriteFileAtomically(const std::string& path, std::string_view contents);

// fsyncs a directory, so that renames and new entries in it survive a crash. Throws
// kInternal naming the directory.
void SyncDirectory(const std::string& path);

// A directory built under "<path>.tmp-<pid>" and swapped into place by Commit(): an
// existing directory at `path` is replaced only once the new one is complete.
class AtomicDirectory {
 public:
  explicit AtomicDirectory(std::string path);
  // The same with a staging directory of the caller's naming (one other processes can find,
  // as the ranks writing one checkpoint do); it is removed and created anew.
  AtomicDirectory(std::string path, std::string staging);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  // The temporary directory to write into.
  const std::string& staging() const { return staging_; }
  std::string StagingPath(const std::string& name) const { return staging_ + "/" + name; }
  // fsyncs the staging directory, renames it to the final path and fsyncs the parent.
  void Commit();

 private:
  std::string path_;
  std::string staging_;
  bool committed_ = false;
};

// Reads a whole file; throws kNotFound naming the path when it cannot be opened.
std::string ReadFile(const std::string& path);

}  // namespace flexmoe
