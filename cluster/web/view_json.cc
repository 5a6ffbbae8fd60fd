// /api/job's JSON (view_json.h). Epochs are counted from 1 here, as the launcher prints
// them (metrics.jsonl counts from 0).
#include "cluster/web/view_json.h"

#include <algorithm>

namespace flexmoe {
namespace {

using Json = nlohmann::json;

Json Member(const JobMemberRecord& m) {
  return {{"role", m.role}, {"rank", m.rank}, {"host", m.host}, {"pid", m.pid}};
}

// The slowest worker is marked a straggler when its step is 20% over the workers' median.
Json StepJson(const StepLine& step) {
  std::vector<double> totals;
  for (const PhaseMsRecord& p : step.worker_step_ms) {
    totals.push_back(p.compute + p.exchange + p.reduce + p.data);
  }
  std::vector<double> sorted = totals;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n == 0 ? 0 : (sorted[(n - 1) / 2] + sorted[n / 2]) / 2;
  const double slowest = sorted.empty() ? 0 : sorted.back();
  Json workers = Json::array();
  for (size_t r = 0; r < step.worker_step_ms.size(); ++r) {
    const PhaseMsRecord& p = step.worker_step_ms[r];
    workers.push_back(
        {{"rank", r},
         {"compute_ms", p.compute},
         {"exchange_ms", p.exchange},
         {"reduce_ms", p.reduce},
         {"data_ms", p.data},
         {"straggler", totals.size() > 1 && totals[r] == slowest && slowest > 1.2 * median}});
  }
  return {{"epoch", step.at.epoch + 1},
          {"global_step", step.at.global_step},
          {"samples_per_s", step.samples_per_s},
          {"loss", step.at.loss},
          {"workers", workers}};
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

}  // namespace

Json JobViewJson(const JobViewState& state) {
  const JobRecord& job = state.job;
  Json members = Json::array();
  for (const MemberView& m : state.members) {
    Json member = Member(m.member);
    member["state"] = m.member.state;
    member["heartbeat_age_s"] = m.heartbeat_age_s ? Json(*m.heartbeat_age_s) : Json(nullptr);
    members.push_back(std::move(member));
  }
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
          {"members", members},
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
