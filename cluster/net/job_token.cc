// Reading the job token from the environment or a file (job_token.h).
#include "cluster/net/job_token.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

std::string Trim(const std::string& s) {
  const char* space = " \t\r\n";
  const size_t first = s.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

}  // namespace

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
    const std::string path = source.substr(5);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      Fail(ErrorCode::kNotFound, "cluster.job_token_source: cannot read token file '", path, "'");
    }
    std::ostringstream text;
    text << in.rdbuf();
    token = Trim(text.str());
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
