// Test helpers: a temporary directory removed at scope exit, small file writers, and a count
// of the open descriptors.
#pragma once

#include <cstddef>
#include <string>

namespace flexmoe::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Path(const std::string& name) const { return path_ + "/" + name; }
  // Writes `contents` to path()/name (creating parent directories); returns the path.
  std::string Write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

// Writes `contents` gzip-compressed to `path`.
void WriteGzip(const std::string& path, const std::string& contents);

// The file descriptors this process has open (/proc/self/fd), for tests that check that a
// failure closed what it opened.
size_t OpenDescriptors();

}  // namespace flexmoe::testing
