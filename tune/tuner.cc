// The tune search: folds, trial scheduling, scoring and results (tuner.h).
#include "tune/tuner.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster/base/atomic_file.h"
#include "cluster/base/child_process.h"
#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/metrics/run_records.h"
#include "data_loader/prepare.h"
#include "data_loader/prepared_check.h"
#include "data_loader/shard.h"
#include "proto/config_loader.h"
#include "trainer/train/metrics.h"
#include "tune/folds.h"
#include "tune/tune_results.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string FoldDir(const TuneOptions& o, int fold) {
  return o.out_dir + "/folds/fold-" + std::to_string(fold + 1);
}

std::string TrialRunDir(const TuneOptions& o, const Trial& t, int fold) {
  char name[32];
  std::snprintf(name, sizeof(name), "/trials/%03d/fold-%d", t.number, fold + 1);
  return o.out_dir + name;
}

// Each fold's splits file and prepared data (training statistics fitted on the fold's own
// training part, as a run on it would).
void PrepareFolds(const TuneOptions& o, const config::Config& base, int k, uint64_t seed,
                  std::ostream* progress) {
  const PreparedDataset prepared =
      OpenPreparedFor(base.data(), "flexmoe prepare --config " + o.config_origin);
  const std::vector<int> folds = AssignFolds(prepared.index, k, seed);
  for (int f = 0; f < k; ++f) {
    const std::string fold_dir = FoldDir(o, f);
    fs::create_directories(fold_dir);
    WriteFoldSplits(prepared.index, folds, f, fold_dir + "/splits.json");
    config::Config fold_config = base;
    fold_config.mutable_data()->set_splits_file(fold_dir + "/splits.json");
    PrepareDataset(fold_config, fold_dir + "/prepared", nullptr);
  }
  if (progress)
    *progress << "prepared " << k << " folds of " << prepared.dir << " under " << o.out_dir
              << "/folds (test samples left out)\n";
}

// The selection metric's key in metrics.jsonl.
std::string MetricKey(config::TrainingConfig::Selection s) {
  if (s == config::TrainingConfig::AUC) return "auc";
  if (s == config::TrainingConfig::MACRO_F1) return "f1";
  return "acc";
}

// The best epoch's validation score from a finished run's metrics.jsonl, NaN without one.
double ReadScore(const std::string& run_dir, const std::string& key) {
  std::ifstream in(RunDir(run_dir).metrics());
  std::string line;
  double score = kNaN;
  while (std::getline(in, line)) {
    const std::optional<TestLine> test = TestLineFrom(nlohmann::json::parse(line, nullptr, false));
    if (!test) continue;
    score = key == "acc"   ? test->validation.acc
            : key == "f1"  ? test->validation.f1
            : key == "auc" ? test->validation.auc
                           : kNaN;
  }
  return score;
}

std::vector<std::string> TrainArgv(const TuneOptions& o, const Trial& t, int fold) {
  std::vector<std::string> argv = {o.executable, "train", "--config", o.config_path};
  std::vector<std::string> sets = o.overrides;
  sets.insert(sets.end(), t.overrides.begin(), t.overrides.end());
  // The fold's data as it was prepared (PrepareFolds): its splits file and directory.
  sets.push_back("data.splits_file=" + FoldDir(o, fold) + "/splits.json");
  sets.push_back("data.prepared_dir=" + FoldDir(o, fold) + "/prepared");
  sets.push_back("run.dir=" + TrialRunDir(o, t, fold));
  // One model per trial and fold: training.seed, on the fold's own splits.
  sets.push_back("training.seeds=");
  sets.push_back("training.ensemble_size=1");
  sets.push_back("training.cross_fit=false");
  for (const std::string& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  for (const std::string& a : {std::string("--workers"), std::string("1"), std::string("--threads"),
                               std::to_string(o.threads)}) {
    argv.push_back(a);
  }
  return argv;
}

std::string Joined(const std::vector<std::string>& argv) {
  std::string text;
  for (const std::string& a : argv) text += a + "\n";
  return text;
}

// One (trial, fold) run of `flexmoe train`.
struct Job {
  size_t trial = 0;
  int fold = 0;
  std::string run_dir;
  std::vector<std::string> argv;
  std::unique_ptr<ChildProcess> child;
  Clock::time_point started, terminated;
  bool sent_term = false;
};

class Scheduler {
 public:
  Scheduler(const TuneOptions& o, std::string key, std::vector<TrialResult>* results,
            std::ostream* progress)
      : o_(o), key_(std::move(key)), results_(*results), progress_(progress) {}

  void Add(size_t trial, int fold) {
    Job job;
    job.trial = trial;
    job.fold = fold;
    job.run_dir = TrialRunDir(o_, results_[trial].trial, fold);
    job.argv = TrainArgv(o_, results_[trial].trial, fold);
    waiting_.push_back(std::move(job));
  }

  // Runs every job; false when stopped.
  bool Run(const std::function<void(size_t)>& trial_done) {
    const int parallel = std::max(1, o_.parallel);
    bool stopping = false;
    while (!waiting_.empty() || !running_.empty()) {
      if (!stopping && o_.stop_requested && o_.stop_requested()) {
        stopping = true;
        waiting_.clear();
        for (Job& j : running_) Terminate(&j);
        if (progress_) *progress_ << "tune: stopping; running trials were told to stop\n";
      }
      while (!stopping && !waiting_.empty() && static_cast<int>(running_.size()) < parallel) {
        Start(std::move(waiting_.front()), trial_done);
        waiting_.pop_front();
      }
      for (auto it = running_.begin(); it != running_.end();) {
        if (!it->child->Ended()) {
          Police(&*it);
          ++it;
          continue;
        }
        Finish(*it, trial_done);
        it = running_.erase(it);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return !stopping;
  }

 private:
  void Start(Job job, const std::function<void(size_t)>& trial_done) {
    // A finished run with the same command line is reused (an interrupted search resumes).
    const std::string argv_file = job.run_dir + "/tune-argv.txt";
    if (fs::exists(argv_file) && ReadFile(argv_file) == Joined(job.argv)) {
      const double score = ReadScore(job.run_dir, key_);
      if (!std::isnan(score)) {
        ++results_[job.trial].reused;
        Record(job, score, "", trial_done);
        return;
      }
    }
    fs::remove_all(job.run_dir);
    fs::create_directories(job.run_dir);
    WriteFileAtomically(argv_file, Joined(job.argv));
    ChildSpec spec;
    spec.name = "trial " + std::to_string(results_[job.trial].trial.number);
    spec.argv = job.argv;
    spec.log = job.run_dir + "/train.log";
    // In tune's process group: a signal to the group (Ctrl-C, a batch system's kill)
    // reaches every trial's launcher; a trial's job stops when its launcher is gone.
    spec.group = ::getpgrp();
    job.child = std::make_unique<ChildProcess>(spec);
    job.started = Clock::now();
    running_.push_back(std::move(job));
  }

  // The deadline: SIGTERM (the run checkpoints and exits), SIGKILL 30 s later.
  void Police(Job* job) {
    const double age = std::chrono::duration<double>(Clock::now() - job->started).count();
    if (!job->sent_term && age > o_.trial_timeout_s) Terminate(job);
    if (job->sent_term &&
        std::chrono::duration<double>(Clock::now() - job->terminated).count() > 30) {
      job->child->Signal(SIGKILL);
    }
  }

  void Terminate(Job* job) {
    if (job->sent_term) return;
    job->sent_term = true;
    job->terminated = Clock::now();
    job->child->Signal(SIGTERM);
  }

  void Finish(const Job& job, const std::function<void(size_t)>& trial_done) {
    const double seconds = std::chrono::duration<double>(Clock::now() - job.started).count();
    double score = kNaN;
    std::string error;
    if (job.child->status() == 0 && !job.sent_term) score = ReadScore(job.run_dir, key_);
    if (std::isnan(score)) {
      error = job.child->Describe() +
              (job.sent_term ? " (stopped or past --trial-timeout-s)" : "") + "; " +
              job.child->log() + ":\n" + job.child->LogTail(5);
    }
    if (progress_) {
      *progress_ << "trial " << results_[job.trial].trial.number << " fold " << job.fold + 1
                 << ": ";
      if (error.empty()) {
        *progress_ << key_ << " " << score;
      } else {
        *progress_ << "failed, " << job.child->Describe();
      }
      *progress_ << " (" << static_cast<int>(seconds) << " s)" << std::endl;
    }
    Record(job, score, error, trial_done);
  }

  void Record(const Job& job, double score, const std::string& error,
              const std::function<void(size_t)>& trial_done) {
    TrialResult& r = results_[job.trial];
    r.fold_scores[job.fold] = score;
    if (r.error.empty()) r.error = error;
    if (++done_[job.trial] == static_cast<int>(r.fold_scores.size())) trial_done(job.trial);
  }

  const TuneOptions& o_;
  const std::string key_;
  std::vector<TrialResult>& results_;
  std::ostream* progress_;
  std::deque<Job> waiting_;
  std::vector<Job> running_;
  std::map<size_t, int> done_;
};

void Summarise(TrialResult* r) {
  bool failed = false;
  for (double s : r->fold_scores) failed = failed || std::isnan(s);
  if (failed) {
    r->mean = r->std = kNaN;
    return;
  }
  const MeanAndStd m = MeanStd(r->fold_scores, 0);
  r->mean = m.mean;
  r->std = m.std;
}

// Copies the config into OUT under a name that carries its text's CRC32C.
std::string SnapshotConfig(const std::string& path, const std::string& out_dir) {
  const std::string text = ReadFile(path);
  char name[48];
  std::snprintf(name, sizeof(name), "/config-%08x.textproto", Crc32c(text.data(), text.size()));
  WriteFileAtomically(out_dir + name, text);
  return out_dir + name;
}

}  // namespace

TuneResult RunTune(const TuneOptions& options, std::ostream* progress) {
  TuneOptions o = options;
  o.config_origin = options.config_path;
  const tune::Space space = LoadSpace(o.space_path);
  const config::Config base = LoadConfig(o.config_path, o.overrides);
  std::vector<Trial> trials = MakeTrials(space, o.max_trials);
  if (progress && space.search() == tune::Space::GRID && GridSize(space) > o.max_trials) {
    *progress << "tune: the grid has " << GridSize(space) << " points; --trials " << o.max_trials
              << " runs the first " << trials.size() << "\n";
  }
  // Every trial's config is loaded and checked before anything runs.
  for (const Trial& t : trials) {
    std::vector<std::string> sets = o.overrides;
    sets.insert(sets.end(), t.overrides.begin(), t.overrides.end());
    try {
      LoadConfig(o.config_path, sets);
    } catch (const Error& e) {
      Fail(e.code(), o.space_path, ": trial ", t.number, " gives an invalid config: ", e.what());
    }
  }
  TuneResult result;
  result.metric = MetricKey(base.training().selection());
  fs::create_directories(o.out_dir);
  o.config_path = SnapshotConfig(o.config_origin, o.out_dir);
  PrepareFolds(o, base, space.folds(), space.seed(), progress);
  for (const Trial& t : trials) {
    TrialResult r;
    r.trial = t;
    r.fold_scores.assign(space.folds(), kNaN);
    result.trials.push_back(std::move(r));
  }
  result.csv_path = o.out_dir + "/trials.csv";
  result.best_config_path = o.out_dir + "/best.textproto";
  Scheduler scheduler(o, result.metric, &result.trials, progress);
  for (size_t t = 0; t < trials.size(); ++t) {
    for (int f = 0; f < space.folds(); ++f) scheduler.Add(t, f);
  }
  if (progress) {
    *progress << "tune: " << trials.size() << " trials x " << space.folds() << " folds, "
              << std::max(1, o.parallel) << " at once, " << o.threads
              << " thread(s) each; score: validation " << result.metric << std::endl;
  }
  result.stopped = !scheduler.Run([&](size_t t) {
    TrialResult& r = result.trials[t];
    Summarise(&r);
    if (progress) {
      *progress << "trial " << r.trial.number << " (" << TrialLabel(r.trial) << "): ";
      if (std::isnan(r.mean)) {
        *progress << "failed: " << r.error << "\n";
      } else {
        *progress << result.metric << " " << r.mean << " +- " << r.std
                  << (r.reused > 0 ? " (reused)" : "") << std::endl;
      }
    }
    WriteTrialsCsv(result, space, result.csv_path);  // after each trial: progress on disk
  });
  for (TrialResult& r : result.trials) Summarise(&r);
  result.best = BestTrial(result.trials);
  WriteTrialsCsv(result, space, result.csv_path);
  if (result.best >= 0) WriteBestConfig(o, result, result.best_config_path);
  return result;
}

}  // namespace flexmoe
