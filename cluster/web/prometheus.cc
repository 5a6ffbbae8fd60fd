// /metrics in the Prometheus text exposition format (view_json.h).
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "cluster/web/view_json.h"

namespace flexmoe {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// One metric family: its HELP and TYPE lines, then its samples.
class Family {
 public:
  Family(std::ostringstream& out, const std::string& name, const std::string& type,
         const std::string& help)
      : out_(out), name_(name) {
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  void Sample(double value, const Labels& labels = {}) {
    out_ << name_;
    if (!labels.empty()) {
      out_ << "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        out_ << (i > 0 ? "," : "") << labels[i].first << "=\"" << Escape(labels[i].second) << "\"";
      }
      out_ << "}";
    }
    out_ << " " << Value(value) << "\n";
  }

 private:
  static std::string Escape(const std::string& text) {
    std::string out;
    for (char c : text) {
      if (c == '\\' || c == '"') out += '\\';
      out += c == '\n' ? std::string("\\n") : std::string(1, c);
    }
    return out;
  }
  static std::string Value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    std::ostringstream s;
    s.precision(17);
    s << v;
    return s.str();
  }

  std::ostringstream& out_;
  std::string name_;
};

void JobFamilies(std::ostringstream& out, const JobViewState& state) {
  Family(out, "flexmoe_job_info", "gauge", "The job: its id and state (always 1).")
      .Sample(1, {{"job_id", state.job.job_id}, {"state", state.job.state}});
  Family(out, "flexmoe_workers", "gauge", "Worker processes of the job.").Sample(state.job.workers);
  std::map<std::pair<std::string, std::string>, int> counts;
  for (const MemberView& m : state.members) ++counts[{m.member.role, m.member.state}];
  Family members(out, "flexmoe_members", "gauge", "Members of the job by role and state.");
  for (const auto& [key, n] : counts)
    members.Sample(n, {{"role", key.first}, {"state", key.second}});
  double oldest = 0;
  for (const MemberView& m : state.members)
    oldest = std::max(oldest, m.heartbeat_age_s.value_or(0));
  Family(out, "flexmoe_heartbeat_age_max_seconds", "gauge",
         "Seconds since the coordinator last heard from the running member heard from least "
         "recently.")
      .Sample(oldest);
  // One series per member only in jobs of up to metrics.per_worker_limit workers.
  if (state.job.workers <= state.per_worker_limit) {
    Family age(out, "flexmoe_heartbeat_age_seconds", "gauge",
               "Seconds since the coordinator last heard from a running member.");
    for (const MemberView& m : state.members) {
      if (!m.heartbeat_age_s) continue;
      age.Sample(*m.heartbeat_age_s, {{"role", m.member.role},
                                      {"rank", std::to_string(m.member.rank)},
                                      {"host", m.member.host}});
    }
  }
  Family(out, "flexmoe_restarts", "gauge",
         "Restarts of the job so far after a member died (flexmoe train --max-restarts).")
      .Sample(state.restart_count);
  Family checkpoint(out, "flexmoe_checkpoint_newest_step", "gauge",
                    "The global step of the newest complete checkpoint.");
  if (state.newest_checkpoint_step >= 0) checkpoint.Sample(state.newest_checkpoint_step);
}

void StepFamilies(std::ostringstream& out, const JobViewState& state) {
  Family(out, "flexmoe_samples_total", "counter", "Training samples over the logged steps.")
      .Sample(static_cast<double>(state.samples_total));
  if (!state.last_step) return;
  const StepLine& step = *state.last_step;
  Family(out, "flexmoe_samples_per_second", "gauge",
         "Training samples per second over the last logged window (the slowest worker's).")
      .Sample(step.samples_per_s);
  Family(out, "flexmoe_epoch", "gauge", "The epoch being trained, from 1.")
      .Sample(step.at.epoch + 1);
  Family(out, "flexmoe_global_step", "gauge", "Steps trained so far.")
      .Sample(static_cast<double>(step.at.global_step));
  Family(out, "flexmoe_train_loss", "gauge", "The training loss of the last logged step.")
      .Sample(step.at.loss);
  const WorkerSpread& spread = step.worker_total_ms;
  Family workers(out, "flexmoe_worker_step_seconds", "gauge",
                 "The workers' mean step over the last logged window: their median, 90th "
                 "percentile and slowest.");
  workers.Sample(spread.p50 / 1e3, {{"stat", "median"}});
  workers.Sample(spread.p90 / 1e3, {{"stat", "p90"}});
  workers.Sample(spread.max / 1e3, {{"stat", "max"}});
  Family(out, "flexmoe_straggler_rank", "gauge",
         "The slowest worker when its step is over 1.2 times the median; -1 when none is.")
      .Sample(step.straggler);
  // Per-worker series: jobs of up to metrics.per_worker_limit workers (the line has them).
  Family phases(out, "flexmoe_step_phase_seconds", "gauge",
                "Mean seconds of a step per worker and phase over the last logged window.");
  for (size_t r = 0; r < step.worker_step_ms.size(); ++r) {
    const PhaseMsRecord& p = step.worker_step_ms[r];
    const std::string w = std::to_string(r);
    phases.Sample(p.compute / 1e3, {{"worker", w}, {"phase", "compute"}});
    phases.Sample(p.exchange / 1e3, {{"worker", w}, {"phase", "exchange"}});
    phases.Sample(p.reduce / 1e3, {{"worker", w}, {"phase", "reduce"}});
    phases.Sample(p.data / 1e3, {{"worker", w}, {"phase", "data"}});
  }
}

void ModelFamilies(std::ostringstream& out, const JobViewState& state) {
  Family tokens(out, "flexmoe_expert_tokens_total", "counter",
                "Tokens routed to each expert of each sparse layer over the logged steps.");
  for (const LayerTokens& layer : state.total_tokens) {
    for (int64_t e = 0; e < layer.experts; ++e) {
      int64_t sum = 0;
      for (int64_t c = 0; c < layer.combinations; ++c)
        sum += layer.counts[e * layer.combinations + c];
      tokens.Sample(static_cast<double>(sum),
                    {{"layer", std::to_string(layer.layer)}, {"expert", std::to_string(e)}});
    }
  }
  if (state.epochs.empty()) return;
  const EpochLine& e = state.epochs.back();
  Family(out, "flexmoe_expert_imbalance", "gauge",
         "The last epoch's largest expert load over the mean (1: balanced).")
      .Sample(e.expert_imbalance);
  Family(out, "flexmoe_epoch_train_loss", "gauge", "The last epoch's mean training loss.")
      .Sample(e.train_loss);
  Family score(out, "flexmoe_validation_score", "gauge",
               "The last epoch's validation scores (ratios; accuracy, macro F1, AUC).");
  for (const auto& [name, value] : {std::pair<const char*, double>{"acc", e.validation.acc},
                                    {"f1", e.validation.f1},
                                    {"auc", e.validation.auc}}) {
    if (!std::isnan(value)) score.Sample(value, {{"metric", name}});
  }
}

// A delay over the last minute as gauges: its median, 99th percentile and largest.
void Distribution(std::ostringstream& out, const std::string& name, const std::string& help,
                  const LatencyFigures& f) {
  Family family(out, name, "gauge", help + " Over the last minute: median, p99, max.");
  family.Sample(f.p50, {{"stat", "median"}});
  family.Sample(f.p99, {{"stat", "p99"}});
  family.Sample(f.max, {{"stat", "max"}});
}

void ControlPlaneFamilies(std::ostringstream& out, const JobViewState& state) {
  if (!state.control_plane) return;
  const ControlPlaneFigures& c = *state.control_plane;
  Distribution(out, "flexmoe_coordinator_loop_lag_seconds",
               "How late the coordinator's thread ran a handler that was due (what a heartbeat "
               "waits before it is judged).",
               c.loop_lag);
  Distribution(
      out, "flexmoe_coordinator_heartbeat_gap_seconds",
      "Seconds between a member's consecutive heartbeats as the coordinator read them (the "
      "silence it judges).",
      c.heartbeat_gap);
  Distribution(out, "flexmoe_coordinator_job_json_seconds",
               "Seconds the coordinator's thread took to build job.json's record (written by a "
               "thread of its own).",
               c.job_json);
  Family(out, "flexmoe_coordinator_job_json_write_max_seconds", "gauge",
         "The longest write of job.json so far (temporary file, fsync, rename), on the "
         "writer's own thread.")
      .Sample(c.job_json_write_max_s);
  Family(out, "flexmoe_coordinator_reports_per_second", "gauge",
         "Worker reports (metrics records) the coordinator took per second.")
      .Sample(c.reports_per_s);
}

}  // namespace

std::string PrometheusText(const JobViewState& state) {
  std::ostringstream out;
  JobFamilies(out, state);
  StepFamilies(out, state);
  ModelFamilies(out, state);
  ControlPlaneFamilies(out, state);
  return out.str();
}

}  // namespace flexmoe
