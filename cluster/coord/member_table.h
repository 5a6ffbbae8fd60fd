// The coordinator's members: who registered (role, rank, host, pid), on which connection,
// when each was last heard and at which step, who has left; and the world size the first
// worker gave. Used on the coordinator's one thread only (no locking).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "proto/coordinator.pb.h"

namespace flexmoe {
namespace net {
class Connection;
}

// A judge of silence that was itself stalled (its thread starved, or blocked in a write)
// cannot tell a silent member from one whose frames wait unread in its socket: after a gap
// of more than max_gap_s between two looks, that look only re-arms, and what arrived
// meanwhile is read before the next one judges.
class StallGuard {
 public:
  using Clock = std::chrono::steady_clock;
  explicit StallGuard(double max_gap_s) : max_gap_s_(max_gap_s) {}
  // True when the previous look was at most max_gap_s before `now` (or there was none).
  bool Steady(Clock::time_point now);
  double last_gap_s() const { return last_gap_s_; }

 private:
  double max_gap_s_;
  std::optional<Clock::time_point> last_;
  double last_gap_s_ = 0;
};

class MemberTable {
 public:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    coordinator::Member member;
    net::Connection* connection = nullptr;  // null once closed
    Clock::time_point last_heard = Clock::now();
    bool left = false;
    int64_t step = 0;
  };

  // Adds a member on `connection` and returns its id. The first worker sets the world
  // size; kInvalidArgument naming the member when its rank does not fit the world size, or
  // another member has its role and rank.
  int Add(const coordinator::Member& member, int world_size, net::Connection* connection);
  Entry& at(int id) { return members_.at(id); }
  const std::map<int, Entry>& all() const { return members_; }
  int world_size() const { return world_size_; }
  // The workers that have left.
  int workers_left() const;

  // Sends `frame` to every member that is still connected and has not left and that `pick`
  // selects; returns how many it went to.
  int Send(const std::string& frame, const std::function<bool(const coordinator::Member&)>& pick);
  // The first connected member not heard from for more than `timeout_s`, with its silence in
  // *silent_s; -1 when none.
  int FirstSilent(double timeout_s, double* silent_s) const;

 private:
  std::map<int, Entry> members_;
  std::map<std::pair<int, int>, int> by_rank_;  // (role, rank) -> id
  int next_id_ = 0;
  int world_size_ = 0;
};

}  // namespace flexmoe
