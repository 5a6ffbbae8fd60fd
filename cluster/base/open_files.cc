// The open-file limit (open_files.h).
#include "cluster/base/open_files.h"

#include <sys/resource.h>

#include <algorithm>

#include "cluster/base/error.h"

namespace flexmoe {

long EnsureOpenFiles(long needed, const char* what) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return needed;
  const auto soft = static_cast<long>(limit.rlim_cur);
  const bool unlimited = limit.rlim_max == RLIM_INFINITY;
  if (soft >= needed) return soft;
  if (!unlimited && static_cast<long>(limit.rlim_max) < needed) {
    Fail(ErrorCode::kFailedPrecondition, what, " needs ", needed, " open files, but this process ",
         "may open at most ", static_cast<long>(limit.rlim_max),
         " (the hard RLIMIT_NOFILE): raise it (ulimit -Hn, or LimitNOFILE= for a service)");
  }
  limit.rlim_cur = unlimited ? static_cast<rlim_t>(needed)
                             : std::min(limit.rlim_max, static_cast<rlim_t>(needed));
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    Fail(ErrorCode::kFailedPrecondition, what, " needs ", needed,
         " open files and cannot raise its limit of ", soft);
  }
  return static_cast<long>(limit.rlim_cur);
}

}  // namespace flexmoe
