// Temporary-name-then-rename writers for files and directories (see atomic_file.h).
#include "cluster/base/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"

namespace flexmoe {
namespace fs = std::filesystem;

namespace {
std::string TempName(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}
}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), temp_path_(TempName(path_)) {
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    Fail(ErrorCode::kNotFound, "cannot create ", temp_path_, ": ", std::strerror(errno));
  }
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(temp_path_.c_str());
  }
}

void AtomicFile::Write(const void* data, size_t size) {
  if (size > 0 && std::fwrite(data, 1, size, file_) != size) {
    Fail(ErrorCode::kInternal, "write to ", temp_path_, " failed: ", std::strerror(errno));
  }
  size_ += size;
  crc_ = Crc32c(data, size, crc_);
}

void AtomicFile::Commit() {
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok || std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    std::string reason = std::strerror(errno);
    std::remove(temp_path_.c_str());
    Fail(ErrorCode::kInternal, "cannot write ", path_, ": ", reason);
  }
}

void WriteFileAtomically(const std::string& path, std::string_view contents) {
  AtomicFile file(path);
  file.Write(contents);
  file.Commit();
}

AtomicDirectory::AtomicDirectory(std::string path) : AtomicDirectory(path, TempName(path)) {}

AtomicDirectory::AtomicDirectory(std::string path, std::string staging)
    : path_(std::move(path)), staging_(std::move(staging)) {
  std::error_code ec;
  fs::remove_all(staging_, ec);
  fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (!fs::create_directory(staging_, ec)) {
    Fail(ErrorCode::kNotFound, "cannot create directory ", staging_, ": ", ec.message());
  }
}

AtomicDirectory::~AtomicDirectory() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

void SyncDirectory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
  bool ok = fd >= 0 && ::fsync(fd) == 0;
  std::string reason = ok ? "" : std::strerror(errno);
  if (fd >= 0) ::close(fd);
  if (!ok) Fail(ErrorCode::kInternal, "cannot sync directory ", path, ": ", reason);
}

void AtomicDirectory::Commit() {
  SyncDirectory(staging_);
  std::error_code ec;
  std::string old = path_ + ".old-" + std::to_string(::getpid());
  bool had_previous = fs::exists(path_, ec);
  if (had_previous) {
    fs::rename(path_, old, ec);
    if (ec) Fail(ErrorCode::kInternal, "cannot move aside ", path_, ": ", ec.message());
  }
  fs::rename(staging_, path_, ec);
  if (ec) {
    std::error_code ignored;
    if (had_previous) fs::rename(old, path_, ignored);
    Fail(ErrorCode::kInternal, "cannot rename ", staging_, " to ", path_, ": ", ec.message());
  }
  committed_ = true;
  fs::path parent = fs::path(path_).parent_path();
  SyncDirectory(parent.empty() ? std::string(".") : parent.string());
  if (had_previous) fs::remove_all(old, ec);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(ErrorCode::kNotFound, path, ": cannot open: ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace flexmoe
