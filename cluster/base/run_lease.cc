// The run directory's lease (run_lease.h).
#include "cluster/base/run_lease.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <thread>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/host_name.h"
#include "cluster/base/run_dir.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

std::string Seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", s);
  return text;
}

std::string Describe(const LeaseHolder& h) {
  return "host " + h.host + ", pid " + std::to_string(h.pid) +
         (h.what.empty() ? "" : " (" + h.what + ")");
}

bool SameHolder(const LeaseHolder& a, const LeaseHolder& b) {
  return a.host == b.host && a.pid == b.pid && a.nonce == b.nonce;
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

// The beat file's text ("" when there is none): what a contender watches for a change.
std::string ReadBeat(const std::string& path) {
  try {
    return ReadFile(path);
  } catch (const Error&) {
    return "";
  }
}

// A fresh generation: 64 random bits in hex.
std::string NewNonce() {
  std::random_device random;
  char text[17];
  std::snprintf(text, sizeof(text), "%08x%08x", random(), random());
  return text;
}

}  // namespace

std::string LeasePath(const std::string& run_dir) { return RunDir(run_dir).lease(); }

std::string LeaseBeatPath(const std::string& run_dir, const LeaseHolder& holder) {
  return LeasePath(run_dir) + ".beat-" + holder.nonce;
}

std::string FormatLease(const LeaseHolder& h) {
  return "host " + h.host + "\npid " + std::to_string(h.pid) + "\nwhat " + h.what + "\nnonce " +
         h.nonce + "\n";
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
      } else if (key == "what") {
        h.what = value;
      } else if (key == "nonce") {
        h.nonce = value;
      }  // older leases' renewed_unix_s, and any other line, are not judged
    } catch (const std::exception&) {
      Fail(ErrorCode::kDataLoss, path, ":", number, ": not a lease line: '", line, "'");
    }
  }
  if (fields != 2 || h.host.empty() || h.nonce.find('/') != std::string::npos) {
    Fail(ErrorCode::kDataLoss, path, ": not a lease (host and pid expected)");
  }
  return h;
}

RunLease::RunLease(Options options, std::string* taken_over)
    : options_(std::move(options)), path_(LeasePath(options_.run_dir)) {
  self_.host = HostName();
  self_.pid = ::getpid();
  self_.what = options_.what;
  self_.nonce = NewNonce();
  beat_path_ = LeaseBeatPath(options_.run_dir, self_);
  WriteFileAtomically(beat_path_, "renewals 0\n");
  try {
    Acquire(taken_over);
  } catch (...) {
    ::unlink(beat_path_.c_str());
    throw;
  }
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
    if (ReadLease(path_, &now) && SameHolder(now, self_)) ::unlink(path_.c_str());
  } catch (const Error&) {
  }
  ::unlink(beat_path_.c_str());
}

std::string RunLease::Watch(const LeaseHolder& held) {
  if (held.host == HostName() && ::kill(static_cast<pid_t>(held.pid), 0) != 0 && errno == ESRCH) {
    return "its process has ended";
  }
  const std::string beat_path = LeaseBeatPath(options_.run_dir, held);
  const std::string first = ReadBeat(beat_path);
  const auto start = Clock::now();
  const auto step = std::chrono::duration<double>(std::min(0.25, options_.timeout_s / 8));
  while (true) {
    std::this_thread::sleep_for(step);
    LeaseHolder now;
    if (!ReadLease(path_, &now) || !SameHolder(now, held)) return "changed";
    if (!held.nonce.empty() && ReadBeat(beat_path) != first) return "";
    const double watched = std::chrono::duration<double>(Clock::now() - start).count();
    if (watched >= options_.timeout_s) {
      return "not renewed for " + Seconds(watched) + " s" +
             (first.empty() ? "" : " (its renewal counter stood still)");
    }
  }
}

void RunLease::Acquire(std::string* taken_over) {
  const std::string mine = path_ + ".new-" + self_.host + "-" + std::to_string(self_.pid);
  for (int attempt = 0; attempt < 20; ++attempt) {
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
    const std::string stale = Watch(held);
    if (stale == "changed") continue;
    if (stale.empty()) {
      Fail(ErrorCode::kInvalidArgument, "run directory ", options_.run_dir,
           " is in use by a running job (", Describe(held),
           ", renewing its lease): wait for it to end, stop it, or choose another run directory");
    }
    // Move the stale lease aside, then check that what moved is the lease judged stale (a
    // second taker may have replaced it meanwhile): if not, put it back and look again.
    const std::string aside = path_ + ".stale-" + self_.host + "-" + std::to_string(self_.pid);
    if (::rename(path_.c_str(), aside.c_str()) != 0) continue;
    LeaseHolder moved;
    if (!ReadLease(aside, &moved) || !SameHolder(moved, held)) {
      (void)::link(aside.c_str(), path_.c_str());  // fails if a new lease came: look again
      ::unlink(aside.c_str());
      continue;
    }
    ::unlink(aside.c_str());
    if (!held.nonce.empty()) ::unlink(LeaseBeatPath(options_.run_dir, held).c_str());
    if (taken_over != nullptr) {
      *taken_over = "took over the lease of run directory " + options_.run_dir + " from " +
                    Describe(held) + ": " + stale;
    }
  }
  Fail(ErrorCode::kUnavailable, "cannot take the lease ", path_, ": it keeps changing");
}

bool RunLease::Renew() {
  LeaseHolder now;
  bool present = false;
  try {
    present = ReadLease(path_, &now);
  } catch (const Error&) {
    present = false;  // unreadable: not another holder's
  }
  if (!present) {
    // Removed by hand: take it again, unless another holder linked one meanwhile.
    const std::string mine = path_ + ".new-" + self_.host + "-" + std::to_string(self_.pid);
    try {
      WriteFileAtomically(mine, FormatLease(self_));
      const bool linked = ::link(mine.c_str(), path_.c_str()) == 0;
      ::unlink(mine.c_str());
      if (linked || !ReadLease(path_, &now)) now = self_;
    } catch (const Error&) {
      now = self_;  // a file system hiccup: the next renewal looks again
    }
  }
  if (!SameHolder(now, self_)) {
    if (!lost_.exchange(true) && options_.on_lost) options_.on_lost(now);
    return false;
  }
  try {
    WriteFileAtomically(beat_path_, "renewals " + std::to_string(++renewals_) + "\n");
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
