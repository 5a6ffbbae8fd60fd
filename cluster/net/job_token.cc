// Reading the job token from the environment or a file (job_token.h).
#include "cluster/net/job_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/file_handles.h"

namespace flexmoe {
namespace {

std::string Trim(const std::string& s) {
  const char* space = " \t\r\n";
  const size_t first = s.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

// The file's contents, trimmed; kNotFound with `what` and the path when it cannot be read.
std::string ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(ErrorCode::kNotFound, what, path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return Trim(text.str());
}

}  // namespace

std::string NewToken() {
  std::random_device random;
  std::string token;
  char part[9];
  for (int i = 0; i < 4; ++i) {
    std::snprintf(part, sizeof(part), "%08x", random());
    token += part;
  }
  return token;
}

void WriteTokenFile(const std::string& path, const std::string& token) {
  // A staging file of a name nobody can guess, created exclusively (mkostemp: O_EXCL, mode
  // 0600), so a link planted beside the token is never followed; written, fsynced, renamed
  // over the token (a link at the token's own name is replaced, not followed) and the
  // directory fsynced.
  std::string staging = path + ".new-XXXXXX";
  const UniqueFd fd(::mkostemp(staging.data(), O_CLOEXEC));
  if (!fd.ok()) Fail(ErrorCode::kNotFound, "cannot create ", staging, ": ", std::strerror(errno));
  const std::string text = token + "\n";
  bool written = ::fchmod(fd.get(), 0600) == 0;
  for (size_t done = 0; written && done < text.size();) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    written = n > 0;
    if (written) done += static_cast<size_t>(n);
  }
  written = written && ::fsync(fd.get()) == 0;
  if (!written || ::rename(staging.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(staging.c_str());
    Fail(ErrorCode::kInternal, "cannot write ", path, ": ", reason);
  }
  const std::string parent = std::filesystem::path(path).parent_path().string();
  SyncDirectory(parent.empty() ? "." : parent);
}

std::string ReadTokenFile(const std::string& path) {
  const std::string token = ReadFile(path, "cannot read token file '");
  if (token.empty()) Fail(ErrorCode::kInvalidArgument, path, ": the token is empty");
  return token;
}

std::string ReadJobToken(const config::ClusterConfig& cluster) {
  const std::string& source = cluster.job_token_source();
  if (source.empty()) {
    Fail(ErrorCode::kInvalidArgument,
         "cluster.job_token_source: a token source is required for the loader (\"env:NAME\" or "
         "\"file:PATH\")");
  }
  std::string token;
  if (source.rfind("env:", 0) == 0) {
    const std::string name = source.substr(4);
    const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
    if (value == nullptr) {
      Fail(ErrorCode::kInvalidArgument, "cluster.job_token_source: environment variable '", name,
           "' is not set");
    }
    token = Trim(value);
  } else if (source.rfind("file:", 0) == 0) {
    token = ReadFile(source.substr(5), "cluster.job_token_source: cannot read token file '");
  } else {
    Fail(ErrorCode::kInvalidArgument, "cluster.job_token_source: '", source,
         "' is neither \"env:NAME\" nor \"file:PATH\"");
  }
  if (token.empty()) {
    Fail(ErrorCode::kInvalidArgument, "cluster.job_token_source: the token from '", source,
         "' is empty");
  }
  return token;
}

bool TokensEqual(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace flexmoe
