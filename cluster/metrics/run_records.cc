// The run records to and from JSON (run_records.h).
#include "cluster/metrics/run_records.h"

#include <algorithm>
#include <cmath>

#include "cluster/base/error.h"
#include "cluster/base/placement_json.h"

namespace flexmoe {
namespace {

using Json = nlohmann::json;

Json Number(double v) { return std::isnan(v) ? Json(nullptr) : Json(v); }

// `record[key]` as a T; null (or absent) reads as `absent`.
template <typename T>
T Get(const Json& record, const char* key, T absent) {
  auto it = record.find(key);
  return it == record.end() || it->is_null() ? absent : it->get<T>();
}

ScoreRecord ScoreFrom(const Json& json) {
  ScoreRecord s;
  if (!json.is_object()) return s;
  s.n = Get<int64_t>(json, "n", 0);
  s.acc = Get<double>(json, "acc", kNoScore);
  s.f1 = Get<double>(json, "f1", kNoScore);
  s.auc = Get<double>(json, "auc", kNoScore);
  s.log_loss = Get<double>(json, "log_loss", kNoScore);
  s.brier = Get<double>(json, "brier", kNoScore);
  return s;
}

Json PhaseJson(const PhaseMsRecord& p) {
  return {{"compute", p.compute}, {"exchange", p.exchange}, {"reduce", p.reduce}, {"data", p.data}};
}

PhaseMsRecord PhaseFrom(const Json& json) {
  if (!json.is_object()) return {};
  return {Get<double>(json, "compute", 0), Get<double>(json, "exchange", 0),
          Get<double>(json, "reduce", 0), Get<double>(json, "data", 0)};
}

Json PositionJson(const StepPosition& p) {
  return {{"event", "step"},
          {"seed", p.seed},
          {"epoch", p.epoch},
          {"step", p.step},
          {"global_step", p.global_step},
          {"workers", p.workers},
          {"loss", p.loss},
          {"task_loss", p.task_loss},
          {"router_loss", p.router_loss}};
}

StepPosition PositionFrom(const Json& r) {
  StepPosition p;
  p.seed = Get<uint64_t>(r, "seed", 0);
  p.epoch = Get<int>(r, "epoch", 0);
  p.step = Get<int64_t>(r, "step", 0);
  p.global_step = Get<int64_t>(r, "global_step", -1);
  p.workers = Get<int>(r, "workers", 1);
  p.loss = Get<double>(r, "loss", kNoScore);
  p.task_loss = Get<double>(r, "task_loss", kNoScore);
  p.router_loss = Get<double>(r, "router_loss", kNoScore);
  return p;
}

void AddTokensJson(const TokenCounts& t, Json* record) {
  if (t.counts.empty()) return;
  (*record)["tokens"] = {{"layers", t.layers},
                         {"experts", t.experts},
                         {"combinations", t.combinations},
                         {"counts", t.counts}};
}

TokenCounts TokensFrom(const Json& json) {
  TokenCounts t;
  if (!json.is_object()) return t;
  t.layers = json.at("layers").get<std::vector<int>>();
  t.experts = json.at("experts").get<int64_t>();
  t.combinations = json.at("combinations").get<int64_t>();
  t.counts = json.at("counts").get<std::vector<std::vector<int64_t>>>();
  // The readers index counts[layer][e * combinations + c]: the shape must hold.
  bool shaped = t.experts >= 0 && t.combinations >= 0 && t.counts.size() == t.layers.size();
  for (const auto& layer : t.counts) {
    shaped = shaped && static_cast<int64_t>(layer.size()) == t.experts * t.combinations;
  }
  if (!shaped) {
    Fail(ErrorCode::kDataLoss, "tokens: ", t.counts.size(), " count lists for ", t.layers.size(),
         " layers of ", t.experts, " experts x ", t.combinations, " combinations");
  }
  return t;
}

bool IsEvent(const Json& record, const char* event) {
  if (!record.is_object()) return false;
  auto it = record.find("event");
  return it != record.end() && it->is_string() && it->get_ref<const std::string&>() == event;
}

template <typename F>
auto Checked(const Json& record, F parse) {
  try {
    return parse();
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kDataLoss, "metrics record ", record.dump().substr(0, 80), ": ", e.what());
  }
}

}  // namespace

Json ScoreRecordJson(const ScoreRecord& s) {
  return {{"n", s.n},
          {"acc", Number(s.acc)},
          {"f1", Number(s.f1)},
          {"auc", Number(s.auc)},
          {"log_loss", Number(s.log_loss)},
          {"brier", Number(s.brier)}};
}

Json ToJson(const WorkerStepLine& l) {
  Json json = PositionJson(l.at);
  json["worker"] = l.worker;
  json["steps"] = l.steps;
  json["samples"] = l.samples;
  json["seconds"] = l.seconds;
  json["step_ms"] = PhaseJson(l.step_ms);
  AddTokensJson(l.tokens, &json);
  return json;
}

Json ToJson(const StepLine& l) {
  Json json = PositionJson(l.at);
  json["steps"] = l.steps;
  json["samples"] = l.samples;
  json["samples_per_s"] = l.samples_per_s;
  json["step_ms"] = PhaseJson(l.step_ms);
  if (!l.worker_step_ms.empty()) {
    json["worker_step_ms"] = Json::array();
    for (const PhaseMsRecord& p : l.worker_step_ms) json["worker_step_ms"].push_back(PhaseJson(p));
  }
  const WorkerSpread& w = l.worker_total_ms;
  json["worker_total_ms"] = {
      {"min", w.min}, {"p50", w.p50}, {"p90", w.p90}, {"max", w.max}, {"bins", w.bins}};
  json["slowest"] = Json::array();
  for (const WorkerPhases& p : l.slowest) {
    json["slowest"].push_back({{"worker", p.worker}, {"step_ms", PhaseJson(p.step_ms)}});
  }
  json["straggler"] = l.straggler >= 0 ? Json(l.straggler) : Json(nullptr);
  AddTokensJson(l.tokens, &json);
  return json;
}

void SummarizeWorkers(const std::vector<PhaseMsRecord>& workers, StepLine* line) {
  std::vector<std::pair<double, int>> totals;
  for (size_t r = 0; r < workers.size(); ++r) {
    const PhaseMsRecord& p = workers[r];
    totals.push_back({p.compute + p.exchange + p.reduce + p.data, static_cast<int>(r)});
  }
  line->worker_total_ms = WorkerSpread();
  line->slowest.clear();
  line->straggler = -1;
  if (totals.empty()) return;
  // Slowest first; of equal steps the lower rank first.
  std::sort(totals.begin(), totals.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  const size_t n = totals.size();
  auto at = [&](double q) { return totals[n - 1 - static_cast<size_t>(q * (n - 1) + 0.5)].first; };
  WorkerSpread& w = line->worker_total_ms;
  w.min = totals.back().first;
  w.max = totals.front().first;
  w.p50 = (totals[(n - 1) / 2].first + totals[n / 2].first) / 2;
  w.p90 = at(0.9);
  w.bins.assign(WorkerSpread::kSpreadBins, 0);
  for (const auto& [total, rank] : totals) {
    const double width = (w.max - w.min) / WorkerSpread::kSpreadBins;
    const int bin = width > 0 ? static_cast<int>((total - w.min) / width) : 0;
    ++w.bins[std::min(bin, WorkerSpread::kSpreadBins - 1)];
  }
  for (size_t i = 0; i < n && i < static_cast<size_t>(kSlowestWorkers); ++i) {
    line->slowest.push_back({totals[i].second, workers[totals[i].second]});
  }
  if (n > 1 && w.max > 1.2 * w.p50) line->straggler = totals.front().second;
}

Json ToJson(const EpochLine& l) {
  Json repacked = nullptr;
  if (l.repacked) {
    repacked = {{"imbalance_before", l.repacked->imbalance_before},
                {"imbalance_after", l.repacked->imbalance_after},
                {"placement", PlacementToJson(l.repacked->placement)}};
  }
  return {{"event", "epoch"},
          {"seed", l.seed},
          {"epoch", l.epoch},
          {"global_step", l.global_step},
          {"workers", l.workers},
          {"phase", l.warmup ? "warmup" : "shuffled"},
          {"train_loss", l.train_loss},
          {"task_loss", l.task_loss},
          {"router_loss", l.router_loss},
          {"samples_per_s", l.samples_per_s},
          {"dropped_rows", l.dropped_rows},
          {"expert_imbalance", l.expert_imbalance},
          {"repacked", repacked},
          {"step_ms", PhaseJson(l.step_ms)},
          {"exchange_bytes", l.exchange_bytes},
          {"validation", ScoreRecordJson(l.validation)},
          {"best_epoch", l.best_epoch}};
}

Json ToJson(const TestLine& l) {
  return {{"event", "test"},
          {"seed", l.seed},
          {"workers", l.workers},
          {"best_epoch", l.best_epoch},
          {"validation", ScoreRecordJson(l.validation)},
          {"test", ScoreRecordJson(l.test)},
          {"temperature", l.temperature},
          {"epochs_run", l.epochs_run},
          {"early_stopped", l.early_stopped},
          {"test_ece", Number(l.test_ece)}};
}

Json ToJson(const ResumeLine& l) {
  return {{"event", "resume"},
          {"seed", l.seed},
          {"from", l.from},
          {"global_step", l.global_step},
          {"epoch", l.epoch},
          {"step", l.step},
          {"saved_workers", l.saved_workers},
          {"workers", l.workers}};
}

Json ToJson(const RestartLine& l) {
  return {{"event", "restart"},          {"seed", l.seed},
          {"attempt", l.attempt},        {"reason", l.reason},
          {"workers", l.workers},        {"from", l.from.empty() ? Json(nullptr) : Json(l.from)},
          {"global_step", l.global_step}};
}

std::optional<ResumeLine> ResumeLineFrom(const Json& r) {
  if (!IsEvent(r, "resume")) return std::nullopt;
  return Checked(r, [&] {
    ResumeLine l;
    l.seed = Get<uint64_t>(r, "seed", 0);
    l.from = Get<std::string>(r, "from", "");
    l.global_step = Get<int64_t>(r, "global_step", 0);
    l.epoch = Get<int>(r, "epoch", 0);
    l.step = Get<int64_t>(r, "step", 0);
    l.saved_workers = Get<int>(r, "saved_workers", 1);
    l.workers = Get<int>(r, "workers", 1);
    return std::optional<ResumeLine>(l);
  });
}

std::optional<RestartLine> RestartLineFrom(const Json& r) {
  if (!IsEvent(r, "restart")) return std::nullopt;
  return Checked(r, [&] {
    RestartLine l;
    l.seed = Get<uint64_t>(r, "seed", 0);
    l.attempt = Get<int>(r, "attempt", 0);
    l.reason = Get<std::string>(r, "reason", "");
    l.workers = Get<int>(r, "workers", 1);
    l.from = Get<std::string>(r, "from", "");
    l.global_step = Get<int64_t>(r, "global_step", 0);
    return std::optional<RestartLine>(l);
  });
}

std::optional<EpochLine> EpochLineFrom(const Json& r) {
  if (!IsEvent(r, "epoch")) return std::nullopt;
  return Checked(r, [&] {
    EpochLine l;
    l.seed = Get<uint64_t>(r, "seed", 0);
    l.epoch = Get<int>(r, "epoch", 0);
    l.global_step = Get<int64_t>(r, "global_step", 0);
    l.workers = Get<int>(r, "workers", 1);
    l.warmup = r.value("phase", "") == "warmup";
    l.train_loss = Get<double>(r, "train_loss", kNoScore);
    l.task_loss = Get<double>(r, "task_loss", kNoScore);
    l.router_loss = Get<double>(r, "router_loss", kNoScore);
    l.samples_per_s = Get<double>(r, "samples_per_s", 0);
    l.dropped_rows = Get<int64_t>(r, "dropped_rows", 0);
    l.expert_imbalance = Get<double>(r, "expert_imbalance", 1);
    const Json& repacked = r.value("repacked", Json());
    if (repacked.is_object() && repacked.contains("placement")) {
      l.repacked = RepackRecord{Get<double>(repacked, "imbalance_before", 0),
                                Get<double>(repacked, "imbalance_after", 0),
                                PlacementFromJson(repacked["placement"], "metrics record")};
    }
    l.step_ms = PhaseFrom(r.value("step_ms", Json()));
    l.exchange_bytes = Get<int64_t>(r, "exchange_bytes", 0);
    l.validation = ScoreFrom(r.value("validation", Json()));
    l.best_epoch = Get<int>(r, "best_epoch", 0);
    return std::optional<EpochLine>(l);
  });
}

std::optional<TestLine> TestLineFrom(const Json& r) {
  if (!IsEvent(r, "test")) return std::nullopt;
  return Checked(r, [&] {
    TestLine l;
    l.seed = Get<uint64_t>(r, "seed", 0);
    l.workers = Get<int>(r, "workers", 1);
    l.best_epoch = Get<int>(r, "best_epoch", 0);
    l.validation = ScoreFrom(r.value("validation", Json()));
    l.test = ScoreFrom(r.value("test", Json()));
    l.temperature = Get<double>(r, "temperature", 1);
    l.epochs_run = Get<int>(r, "epochs_run", 0);
    l.early_stopped = Get<bool>(r, "early_stopped", false);
    l.test_ece = Get<double>(r, "test_ece", kNoScore);
    return std::optional<TestLine>(l);
  });
}

std::optional<StepLine> StepLineFrom(const Json& r) {
  if (!IsEvent(r, "step")) return std::nullopt;
  return Checked(r, [&] {
    StepLine l;
    l.at = PositionFrom(r);
    l.steps = Get<int64_t>(r, "steps", 0);
    l.samples = Get<int64_t>(r, "samples", 0);
    l.samples_per_s = Get<double>(r, "samples_per_s", 0);
    l.step_ms = PhaseFrom(r.value("step_ms", Json()));
    for (const Json& p : r.value("worker_step_ms", Json::array())) {
      l.worker_step_ms.push_back(PhaseFrom(p));
    }
    if (r.contains("worker_total_ms")) {
      const Json& w = r.at("worker_total_ms");
      l.worker_total_ms = {Get<double>(w, "min", 0), Get<double>(w, "p50", 0),
                           Get<double>(w, "p90", 0), Get<double>(w, "max", 0),
                           w.value("bins", std::vector<int64_t>())};
      for (const Json& p : r.value("slowest", Json::array())) {
        l.slowest.push_back({Get<int>(p, "worker", 0), PhaseFrom(p.value("step_ms", Json()))});
      }
      l.straggler = r.value("straggler", Json()).is_number() ? r.at("straggler").get<int>() : -1;
    } else {
      SummarizeWorkers(l.worker_step_ms, &l);  // a line written before the summary
    }
    l.tokens = TokensFrom(r.value("tokens", Json()));
    return std::optional<StepLine>(l);
  });
}

WorkerStepLine WorkerStepLineFrom(const Json& r, int rank) {
  if (!IsEvent(r, "step")) {
    Fail(ErrorCode::kInvalidArgument, "worker ", rank, " sent a step part that is not one");
  }
  try {
    WorkerStepLine l;
    l.at = PositionFrom(r);
    l.worker = Get<int>(r, "worker", rank);
    l.steps = Get<int64_t>(r, "steps", 0);
    l.samples = Get<int64_t>(r, "samples", 0);
    l.seconds = Get<double>(r, "seconds", 0);
    l.step_ms = PhaseFrom(r.value("step_ms", Json()));
    l.tokens = TokensFrom(r.value("tokens", Json()));
    return l;
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, "step record of worker ", rank, ": ", e.what());
  }
}

Json ToJson(const EnsembleRecord& r) {
  Json per_combination = Json::object();
  for (const auto& [name, score] : r.test_per_combination) {
    per_combination[name] = ScoreRecordJson(score);
  }
  return {{"seeds", r.seeds},
          {"cross_fit", r.cross_fit},
          {"validation", ScoreRecordJson(r.validation)},
          {"test", ScoreRecordJson(r.test)},
          {"validation_calibrated", ScoreRecordJson(r.validation_calibrated)},
          {"test_calibrated", ScoreRecordJson(r.test_calibrated)},
          {"test_per_combination", per_combination}};
}

EnsembleRecord EnsembleRecordFrom(const Json& json, const std::string& source) {
  if (!json.is_object() || !json.contains("seeds")) {
    Fail(ErrorCode::kDataLoss, source, ": not an ensemble record (no seeds)");
  }
  EnsembleRecord r;
  try {
    r.seeds = json.at("seeds").get<std::vector<uint64_t>>();
    r.cross_fit = json.value("cross_fit", false);
    r.validation = ScoreFrom(json.value("validation", Json()));
    r.test = ScoreFrom(json.value("test", Json()));
    r.validation_calibrated = ScoreFrom(json.value("validation_calibrated", Json()));
    r.test_calibrated = ScoreFrom(json.value("test_calibrated", Json()));
    const Json per_combination = json.value("test_per_combination", Json::object());
    for (const auto& [name, score] : per_combination.items()) {
      r.test_per_combination[name] = ScoreFrom(score);
    }
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kDataLoss, source, ": ", e.what());
  }
  return r;
}

}  // namespace flexmoe
