// The run directory's lease (run_lease.h).
#include "cluster/base/run_lease.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/host_name.h"

namespace flexmoe {
namespace {

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", s);
  return text;
}

std::string Describe(const LeaseHolder& h) {
  return "host " + h.host + ", pid " + std::to_string(h.pid) +
         (h.what.empty() ? "" : " (" + h.what + ")");
}

// The lease at `path`, or false when there is none.
bool ReadLease(const std::string& path, LeaseHolder* out) {
  std::string text;
  try {
    text = ReadFile(path);
  } catch (const Error&) {
    return false;
  }
  *out = ParseLease(text, path);
  return true;
}

// Why `h` is stale ("" when it is live): not renewed within the timeout, or its holder on
// this host has ended.
std::string Staleness(const LeaseHolder& h, double timeout_s) {
  const double age = NowUnix() - h.renewed_unix_s;
  if (age > timeout_s) return "not renewed for " + Seconds(age) + " s";
  if (h.host == HostName() && ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH) {
    return "its process has ended";
  }
  return "";
}

}  // namespace

std::string LeasePath(const std::string& run_dir) { return run_dir + "/job.lease"; }

std::string FormatLease(const LeaseHolder& h) {
  std::ostringstream out;
  out.precision(3);
  out << std::fixed << "host " << h.host << "\npid " << h.pid << "\nrenewed_unix_s "
      << h.renewed_unix_s << "\nwhat " << h.what << "\n";
  return out.str();
}

LeaseHolder ParseLease(const std::string& text, const std::string& path) {
  LeaseHolder h;
  std::istringstream in(text);
  std::string line;
  int fields = 0, number = 0;
  while (std::getline(in, line)) {
    ++number;
    const size_t space = line.find(' ');
    const std::string key = line.substr(0, space);
    const std::string value = space == std::string::npos ? "" : line.substr(space + 1);
    try {
      if (key == "host") {
        h.host = value, ++fields;
      } else if (key == "pid") {
        h.pid = std::stol(value), ++fields;
      } else if (key == "renewed_unix_s") {
        h.renewed_unix_s = std::stod(value), ++fields;
      } else if (key == "what") {
        h.what = value;
      }
    } catch (const std::exception&) {
      Fail(ErrorCode::kDataLoss, path, ":", number, ": not a lease line: '", line, "'");
    }
  }
  if (fields != 3 || h.host.empty() || !std::isfinite(h.renewed_unix_s)) {
    Fail(ErrorCode::kDataLoss, path, ": not a lease (host, pid and renewed_unix_s expected)");
  }
  return h;
}

RunLease::RunLease(Options options, std::string* taken_over)
    : options_(std::move(options)), path_(LeasePath(options_.run_dir)) {
  self_.host = HostName();
  self_.pid = ::getpid();
  self_.what = options_.what;
  Acquire(taken_over);
  renewer_ = std::thread([this] { RenewLoop(); });
}

RunLease::~RunLease() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  LeaseHolder now;
  try {
    if (ReadLease(path_, &now) && now.host == self_.host && now.pid == self_.pid) {
      ::unlink(path_.c_str());
    }
  } catch (const Error&) {
  }
}

void RunLease::Acquire(std::string* taken_over) {
  const std::string mine = path_ + ".new-" + self_.host + "-" + std::to_string(self_.pid);
  for (int attempt = 0; attempt < 20; ++attempt) {
    self_.renewed_unix_s = NowUnix();
    WriteFileAtomically(mine, FormatLease(self_));
    const int linked = ::link(mine.c_str(), path_.c_str());
    const int link_errno = errno;
    ::unlink(mine.c_str());
    if (linked == 0) return;
    if (link_errno != EEXIST) {
      Fail(ErrorCode::kUnavailable, "cannot create the lease ", path_, ": ",
           std::strerror(link_errno));
    }
    LeaseHolder held;
    if (!ReadLease(path_, &held)) continue;  // released meanwhile: try again
    const std::string stale = Staleness(held, options_.timeout_s);
    if (stale.empty()) {
      Fail(ErrorCode::kInvalidArgument, "run directory ", options_.run_dir,
           " is in use by a running job (", Describe(held), ", lease renewed ",
           Seconds(NowUnix() - held.renewed_unix_s), " s ago): wait for it to end, stop it, ",
           "or choose another run directory");
    }
    // Move the stale lease aside, then check that what moved is the lease judged stale (a
    // second taker may have replaced it meanwhile): if not, put it back and look again.
    const std::string aside = path_ + ".stale-" + self_.host + "-" + std::to_string(self_.pid);
    if (::rename(path_.c_str(), aside.c_str()) != 0) continue;
    LeaseHolder moved;
    const bool same = ReadLease(aside, &moved) && moved.pid == held.pid &&
                      moved.host == held.host && moved.renewed_unix_s == held.renewed_unix_s;
    if (!same) {
      (void)::link(aside.c_str(), path_.c_str());  // fails if a new lease came: look again
      ::unlink(aside.c_str());
      continue;
    }
    ::unlink(aside.c_str());
    if (taken_over != nullptr) {
      *taken_over = "took over the lease of run directory " + options_.run_dir + " from " +
                    Describe(held) + ": " + stale;
    }
  }
  Fail(ErrorCode::kUnavailable, "cannot take the lease ", path_, ": it keeps changing");
}

bool RunLease::Renew() {
  LeaseHolder now;
  try {
    if (!ReadLease(path_, &now)) now = self_;  // removed by hand: take it again
  } catch (const Error&) {
    now = self_;  // unreadable: this holder's write replaces it
  }
  if (now.host != self_.host || now.pid != self_.pid) {
    if (!lost_.exchange(true) && options_.on_lost) options_.on_lost(now);
    return false;
  }
  self_.renewed_unix_s = NowUnix();
  try {
    WriteFileAtomically(path_, FormatLease(self_));
  } catch (const Error&) {
    // A file system hiccup: the next renewal tries again, well within the timeout.
  }
  return true;
}

void RunLease::RenewLoop() {
  const auto interval = std::chrono::duration<double>(options_.timeout_s / 4);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, interval, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    const bool held = Renew();
    lock.lock();
    if (!held) break;
  }
}

}  // namespace flexmoe
