// The job's view for the live page and /metrics (job_view.h).
#include "cluster/web/job_view.h"

#include <glog/logging.h>

#include <algorithm>
#include <regex>

namespace flexmoe {
namespace {

// Adds `tokens` into `into`, layer by layer; a change of shape starts afresh.
void AddTokens(std::vector<LayerTokens>& into, const TokenCounts& tokens) {
  if (into.size() != tokens.layers.size()) into.clear();
  for (size_t l = 0; l < tokens.layers.size(); ++l) {
    if (l >= into.size()) into.push_back({});
    LayerTokens& layer = into[l];
    const std::vector<int64_t>& counts = tokens.counts[l];
    if (layer.layer != tokens.layers[l] || layer.counts.size() != counts.size()) {
      layer = {tokens.layers[l], tokens.experts, tokens.combinations,
               std::vector<int64_t>(counts.size(), 0)};
    }
    for (size_t i = 0; i < counts.size(); ++i) layer.counts[i] += counts[i];
  }
}

void StartSeed(JobViewState& state, uint64_t seed) {
  if (seed == state.seed && (state.last_step || !state.epochs.empty())) return;
  state.seed = seed;
  state.last_step.reset();
  state.epochs.clear();
  state.test.reset();
  state.epoch_tokens.clear();
  state.tokens_epoch = 0;
}

void AddStep(JobViewState& state, StepLine step) {
  StartSeed(state, step.at.seed);
  if (step.at.epoch != state.tokens_epoch) {
    state.epoch_tokens.clear();
    state.tokens_epoch = step.at.epoch;
  }
  AddTokens(state.epoch_tokens, step.tokens);
  AddTokens(state.total_tokens, step.tokens);
  state.samples_total += step.samples;
  state.last_step = std::move(step);
}

}  // namespace

int64_t CheckpointStep(const std::string& path) {
  static const std::regex pattern("step-0*([0-9]+)/?$");
  std::smatch match;
  if (!std::regex_search(path, match, pattern) || match[1].length() > 18) return -1;
  return std::stoll(match[1].str());
}

void AddRunRecord(JobViewState& state, const nlohmann::json& record) {
  if (auto step = StepLineFrom(record)) return AddStep(state, std::move(*step));
  if (auto epoch = EpochLineFrom(record)) {
    StartSeed(state, epoch->seed);
    state.epochs.push_back(std::move(*epoch));
    return;
  }
  if (auto test = TestLineFrom(record)) {
    StartSeed(state, test->seed);
    state.test = std::move(*test);
    return;
  }
  if (auto restart = RestartLineFrom(record)) {
    state.restart_count = std::max(state.restart_count, restart->attempt);
    state.restarts.push_back(std::move(*restart));
    return;
  }
  if (auto resume = ResumeLineFrom(record)) state.resumes.push_back(std::move(*resume));
}

JobView::JobView(double heartbeat_timeout_s, int restart, int per_worker_limit) {
  state_.heartbeat_timeout_s = heartbeat_timeout_s;
  state_.per_worker_limit = per_worker_limit;
  state_.restart_count = restart;
}

void JobView::Apply(Update update) {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    std::lock_guard<std::mutex> queue(queue_mutex_);
    queue_.push_back(std::move(update));
    return;
  }
  ApplyQueued();
  update(state_);
}

void JobView::ApplyQueued() const {
  std::vector<Update> queued;
  HeardMap heard;
  {
    std::lock_guard<std::mutex> queue(queue_mutex_);
    queued.swap(queue_);
    heard.swap(queued_heard_);
  }
  for (Update& update : queued) update(state_);
  for (const auto& [member, when] : heard) heard_[member] = when;
}

void JobView::SetJob(const JobRecord& job) {
  // Applied once: the copy the update holds moves into the view (a record of every member).
  Apply([job](JobViewState& state) mutable {
    state.newest_checkpoint_step = CheckpointStep(job.newest_checkpoint);
    state.job = std::move(job);
  });
}

void JobView::Heard(const std::string& role, int rank, Clock::time_point when) {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (lock.owns_lock()) {
    heard_[{role, rank}] = when;
    return;
  }
  std::lock_guard<std::mutex> queue(queue_mutex_);
  queued_heard_[{role, rank}] = when;  // the newest per member: at most one entry each
}

void JobView::AddRecord(const nlohmann::json& record) {
  Apply([record](JobViewState& state) {
    try {
      AddRunRecord(state, record);
    } catch (const std::exception& e) {
      // The live view never ends a job: the record is in metrics.jsonl all the same.
      LOG(WARNING) << "the live view skips a record: " << e.what();
    }
  });
}

void JobView::SetControlPlane(const ControlPlaneFigures& figures) {
  Apply([figures](JobViewState& state) { state.control_plane = figures; });
}

JobViewState JobView::Snapshot() const {
  const Clock::time_point now = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  ApplyQueued();
  JobViewState copy = state_;
  copy.members.clear();
  for (const JobMemberRecord& m : copy.job.members) {
    MemberView view{m, std::nullopt};
    auto it = heard_.find({m.role, m.rank});
    if (it != heard_.end() && m.state == "running") {
      view.heartbeat_age_s = std::chrono::duration<double>(now - it->second).count();
    }
    copy.members.push_back(std::move(view));
  }
  return copy;
}

}  // namespace flexmoe
