// Owners of an open file descriptor and of a stdio FILE: closed when the owner goes, so that
// a constructor or reader that throws half-way (a bad header, bad ids) leaks nothing.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <utility>

namespace flexmoe {

// An open file descriptor (-1: none), closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct FileCloser {
  void operator()(std::FILE* file) const {
    if (file != nullptr) std::fclose(file);
  }
};

// An open stdio FILE, closed on destruction.
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

}  // namespace flexmoe
