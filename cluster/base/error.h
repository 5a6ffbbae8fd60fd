// The project's error type and error policy (docs/errors.md): input and environment
// failures throw flexmoe::Error with a code and a message that names the file, line or
// field; programmer invariants use glog CHECK. The CLI maps codes to exit statuses.
#pragma once

#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace flexmoe {

enum class ErrorCode {
  kInvalidArgument,     // bad config, CSV, shard content or command line (exit 2)
  kNotFound,            // a named file or field does not exist (exit 2)
  kDataLoss,            // a checksum or length check failed on stored data (exit 2)
  kDeadlineExceeded,    // a blocking wait passed its deadline
  kUnavailable,         // a peer or service cannot be reached
  kAborted,             // the job was aborted by a peer or the coordinator
  kFailedPrecondition,  // the operation does not fit the current state
  kInternal,            // an unexpected failure of a library we call
};

const char* ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Exit status for an error reaching main(): 2 for bad input (configs and data), 1 otherwise.
int ExitStatusFor(ErrorCode code);

// Writes `line` and a newline to stderr in one write, so that the lines of processes
// sharing a terminal or log (mpirun's ranks) never interleave mid-line.
void PrintErrorLine(const std::string& line);

// Runs a program's body the way every main() of the project ends: an Error prints
// "<program>: error: <message>" and returns ExitStatusFor its code; any other exception
// prints "<program>: internal error: <message>" and returns 1.
int RunReportingErrors(const std::string& program, const std::function<int()>& body);

namespace detail {
inline void Append(std::ostringstream&) {}
template <typename T, typename... Rest>
void Append(std::ostringstream& out, const T& first, const Rest&... rest) {
  out << first;
  Append(out, rest...);
}
}  // namespace detail

// Builds a message from its parts and throws Error(code, message).
template <typename... Parts>
[[noreturn]] void Fail(ErrorCode code, const Parts&... parts) {
  std::ostringstream out;
  detail::Append(out, parts...);
  throw Error(code, out.str());
}

}  // namespace flexmoe
