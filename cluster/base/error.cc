// Names and exit statuses of the error codes declared in error.h.
#include "cluster/base/error.h"

#include <unistd.h>

namespace flexmoe {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kDataLoss:
      return "data loss";
    case ErrorCode::kDeadlineExceeded:
      return "deadline exceeded";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kAborted:
      return "aborted";
    case ErrorCode::kFailedPrecondition:
      return "failed precondition";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

int ExitStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
    case ErrorCode::kDataLoss:
      return 2;
    default:
      return 1;
  }
}

void PrintErrorLine(const std::string& line) {
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(2, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

int RunReportingErrors(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    PrintErrorLine(program + ": error: " + e.what());
    return ExitStatusFor(e.code());
  } catch (const std::exception& e) {
    PrintErrorLine(program + ": internal error: " + e.what());
    return 1;
  }
}

}  // namespace flexmoe
