// The coordinator's members (member_table.h).
#include "cluster/coord/member_table.h"

#include "cluster/base/error.h"
#include "cluster/coord/protocol.h"
#include "cluster/net/server.h"

namespace flexmoe {

namespace co = coordinator;

int MemberTable::Add(const co::Member& m, int world_size, net::Connection* connection) {
  const std::string name = MemberName(m);
  if (m.role() == co::WORKER) {
    if (world_size_ == 0 && world_size > 0) world_size_ = world_size;
    if (world_size != world_size_ || m.rank() < 0 || m.rank() >= world_size_) {
      Fail(ErrorCode::kInvalidArgument, name, ": rank ", m.rank(), " of world size ", world_size,
           ", but the job has ", world_size_, " workers");
    }
  }
  const auto taken = by_rank_.find({m.role(), m.rank()});
  if (taken != by_rank_.end()) {
    Fail(ErrorCode::kInvalidArgument, name, ": ", MemberName(members_.at(taken->second).member),
         " is registered already with that rank");
  }
  const int id = next_id_++;
  by_rank_[{m.role(), m.rank()}] = id;
  Entry& entry = members_[id];
  entry.member = m;
  entry.connection = connection;
  return id;
}

int MemberTable::workers_left() const {
  int left = 0;
  for (const auto& [id, entry] : members_) left += entry.member.role() == co::WORKER && entry.left;
  return left;
}

int MemberTable::Send(const std::string& frame,
                      const std::function<bool(const co::Member&)>& pick) {
  int sent = 0;
  for (auto& [id, entry] : members_) {
    if (entry.connection == nullptr || entry.left || !pick(entry.member)) continue;
    entry.connection->Send(frame);
    ++sent;
  }
  return sent;
}

bool StallGuard::Steady(Clock::time_point now) {
  last_gap_s_ = last_ ? std::chrono::duration<double>(now - *last_).count() : 0;
  last_ = now;
  return last_gap_s_ <= max_gap_s_;
}

int MemberTable::FirstSilent(double timeout_s, double* silent_s) const {
  const Clock::time_point now = Clock::now();
  for (const auto& [id, entry] : members_) {
    if (entry.left || entry.connection == nullptr) continue;
    const double silent = std::chrono::duration<double>(now - entry.last_heard).count();
    if (silent > timeout_s) {
      *silent_s = silent;
      return id;
    }
  }
  return -1;
}

}  // namespace flexmoe
