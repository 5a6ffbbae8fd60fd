// /api/job's JSON (view_json.h). Epochs are counted from 1 here, as the launcher prints
// them (metrics.jsonl counts from 0).
#include "cluster/web/view_json.h"

#include <algorithm>
#include <map>

namespace flexmoe {
namespace {

using Json = nlohmann::json;

Json Member(const JobMemberRecord& m) {
  return {{"role", m.role}, {"rank", m.rank}, {"host", m.host}, {"pid", m.pid}};
}

Json PhasesJson(const PhaseMsRecord& p) {
  return {{"compute_ms", p.compute},
          {"exchange_ms", p.exchange},
          {"reduce_ms", p.reduce},
          {"data_ms", p.data},
          {"total_ms", p.compute + p.exchange + p.reduce + p.data}};
}

// Every worker's bars (jobs of up to metrics.per_worker_limit workers), and at any size the
// spread of the workers' steps, the slowest workers and the straggler (the slowest, when
// its step is over 1.2 times the median).
Json StepJson(const StepLine& step) {
  Json workers = Json::array();
  for (size_t r = 0; r < step.worker_step_ms.size(); ++r) {
    Json w = PhasesJson(step.worker_step_ms[r]);
    w["rank"] = r;
    w["straggler"] = static_cast<int>(r) == step.straggler;
    workers.push_back(std::move(w));
  }
  Json slowest = Json::array();
  for (const WorkerPhases& p : step.slowest) {
    Json w = PhasesJson(p.step_ms);
    w["rank"] = p.worker;
    slowest.push_back(std::move(w));
  }
  const WorkerSpread& s = step.worker_total_ms;
  return {{"epoch", step.at.epoch + 1},
          {"global_step", step.at.global_step},
          {"samples_per_s", step.samples_per_s},
          {"loss", step.at.loss},
          {"workers", workers},
          {"spread",
           {{"min_ms", s.min},
            {"p50_ms", s.p50},
            {"p90_ms", s.p90},
            {"max_ms", s.max},
            {"bins", s.bins}}},
          {"slowest", slowest},
          {"straggler", step.straggler >= 0 ? Json(step.straggler) : Json(nullptr)}};
}

Json EpochJson(const EpochLine& e) {
  return {{"epoch", e.epoch + 1},
          {"train_loss", e.train_loss},
          {"samples_per_s", e.samples_per_s},
          {"expert_imbalance", e.expert_imbalance},
          {"validation", ScoreRecordJson(e.validation)}};
}

// One heatmap per sparse layer: rows are combinations, columns experts.
Json Heatmaps(const JobViewState& state) {
  Json out = Json::array();
  for (const LayerTokens& layer : state.epoch_tokens) {
    Json names = Json::array(), rows = Json::array();
    for (int64_t c = 0; c < layer.combinations; ++c) {
      const std::vector<std::string>& known = state.job.combinations;
      const bool named = c < static_cast<int64_t>(known.size());
      names.push_back(named ? known[c] : "combination " + std::to_string(c));
      Json row = Json::array();
      for (int64_t e = 0; e < layer.experts; ++e) {
        row.push_back(layer.counts[e * layer.combinations + c]);
      }
      rows.push_back(std::move(row));
    }
    out.push_back({{"layer", layer.layer},
                   {"epoch", state.tokens_epoch + 1},
                   {"experts", layer.experts},
                   {"combinations", names},
                   {"tokens", rows}});
  }
  return out;
}

Json RestartsJson(const JobViewState& state) {
  Json out = Json::array();
  for (const RestartLine& r : state.restarts) {
    out.push_back({{"attempt", r.attempt},
                   {"reason", r.reason},
                   {"from", r.from.empty() ? Json(nullptr) : Json(r.from)},
                   {"global_step", r.global_step},
                   {"workers", r.workers}});
  }
  return out;
}

// The members in the page's order: the failed, the gone, the silent past the heartbeat
// timeout, the late (past half of it), then the rest as they registered.
std::vector<const MemberView*> MembersByAttention(const JobViewState& state) {
  auto rank = [&](const MemberView& m) {
    const double age = m.heartbeat_age_s.value_or(0);
    if (m.member.state == "failed") return 0;
    if (m.member.state == "gone") return 1;
    if (age > state.heartbeat_timeout_s) return 2;
    if (age > state.heartbeat_timeout_s / 2) return 3;
    return 4;
  };
  std::vector<std::pair<int, const MemberView*>> keyed;
  for (const MemberView& m : state.members) keyed.push_back({rank(m), &m});
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<const MemberView*> out;
  for (const auto& [key, m] : keyed) out.push_back(m);
  return out;
}

Json MemberJson(const MemberView& m) {
  Json member = Member(m.member);
  member["state"] = m.member.state;
  member["heartbeat_age_s"] = m.heartbeat_age_s ? Json(*m.heartbeat_age_s) : Json(nullptr);
  return member;
}

// Members by state, and the hosts with the most members in trouble (late, silent, failed or
// gone) first, at most kHostsListed.
Json MemberSummary(const JobViewState& state) {
  constexpr size_t kHostsListed = 20;
  std::map<std::string, int> by_state;
  struct Host {
    int members = 0, trouble = 0;
  };
  std::map<std::string, Host> hosts;
  for (const MemberView& m : state.members) {
    ++by_state[m.member.state];
    Host& h = hosts[m.member.host];
    ++h.members;
    const bool late = m.heartbeat_age_s.value_or(0) > state.heartbeat_timeout_s / 2;
    h.trouble += late || m.member.state == "failed" || m.member.state == "gone";
  }
  std::vector<std::pair<std::string, Host>> sorted(hosts.begin(), hosts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.trouble > b.second.trouble;
  });
  Json listed = Json::array();
  for (size_t i = 0; i < sorted.size() && i < kHostsListed; ++i) {
    listed.push_back({{"host", sorted[i].first},
                      {"members", sorted[i].second.members},
                      {"trouble", sorted[i].second.trouble}});
  }
  return {{"by_state", by_state}, {"hosts", listed}, {"hosts_total", hosts.size()}};
}

Json LatencyJson(const LatencyFigures& f) {
  return {{"p50_s", f.p50}, {"p99_s", f.p99}, {"max_s", f.max}, {"count", f.count}};
}

Json ControlPlaneJson(const JobViewState& state) {
  if (!state.control_plane) return nullptr;
  const ControlPlaneFigures& c = *state.control_plane;
  return {{"loop_lag", LatencyJson(c.loop_lag)},
          {"heartbeat_gap", LatencyJson(c.heartbeat_gap)},
          {"job_json", LatencyJson(c.job_json)},
          {"job_json_write_max_s", c.job_json_write_max_s},
          {"reports_per_s", c.reports_per_s}};
}

}  // namespace

Json MembersPageJson(const JobViewState& state, size_t offset) {
  const std::vector<const MemberView*> ordered = MembersByAttention(state);
  Json members = Json::array();
  for (size_t i = offset; i < ordered.size() && i < offset + kMembersPage; ++i) {
    members.push_back(MemberJson(*ordered[i]));
  }
  return {
      {"offset", offset}, {"page", kMembersPage}, {"total", ordered.size()}, {"members", members}};
}

Json JobViewJson(const JobViewState& state) {
  const JobRecord& job = state.job;
  Json page = MembersPageJson(state, 0);
  Json epochs = Json::array();
  for (const EpochLine& e : state.epochs) epochs.push_back(EpochJson(e));
  return {{"job_id", job.job_id},
          {"state", job.state},
          {"source", state.source},
          {"coordinator", job.coordinator},
          {"workers", job.workers},
          {"seed", state.seed},
          {"reason", job.reason},
          {"culprit", job.culprit ? Member(*job.culprit) : Json(nullptr)},
          {"members", page["members"]},
          {"members_total", page["total"]},
          {"members_page", kMembersPage},
          {"member_summary", MemberSummary(state)},
          {"control_plane", ControlPlaneJson(state)},
          {"heartbeat_timeout_s", state.heartbeat_timeout_s},
          {"step", state.last_step ? StepJson(*state.last_step) : Json(nullptr)},
          {"epochs", epochs},
          {"heatmaps", Heatmaps(state)},
          {"checkpoints",
           {{"newest", job.newest_checkpoint},
            {"newest_step", state.newest_checkpoint_step >= 0 ? Json(state.newest_checkpoint_step)
                                                              : Json(nullptr)}}},
          {"restarts", RestartsJson(state)},
          {"restart_count", state.restart_count},
          {"test", state.test ? ScoreRecordJson(state.test->test) : Json(nullptr)}};
}

}  // namespace flexmoe
