// The seed loop and resume resolution of a training job (train_job.h).
#include "launch/train_job.h"

#include <glog/logging.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <ostream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/env.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/comm/gather_bytes.h"
#include "data_loader/folds.h"
#include "launch/loader_batches.h"
#include "launch/train_command.h"
#include "trainer/checkpoint/resumable_manifest.h"
#include "trainer/train/calibration.h"
#include "trainer/train/evaluate.h"
#include "trainer/train/metrics.h"
#include "trainer/train/train_log.h"

namespace flexmoe {
namespace {

// Member j's class probabilities: as scored, or with its calibration when `calibrations`
// holds one per member.
std::vector<float> MemberProbs(const std::vector<const EvalResult*>& members,
                               const std::vector<const Calibration*>& calibrations, size_t j,
                               int num_classes) {
  return calibrations.empty() ? members[j]->probs
                              : Calibrate(members[j]->log_probs, num_classes, *calibrations[j]);
}

// The seeds' mean class probabilities on one split, scored as one predictor (what
// `flexmoe predict --ensemble RUN_DIR` gives, each member calibrated with --calibrated):
// every member scored the same samples in the same order.
GroupedMetrics EnsembleMetrics(const std::vector<const EvalResult*>& members,
                               const std::vector<const Calibration*>& calibrations, int num_classes,
                               int num_groups) {
  std::vector<float> mean(members[0]->probs.size(), 0.0f);
  for (size_t j = 0; j < members.size(); ++j) {
    CHECK_EQ(members[j]->probs.size(), mean.size());
    const std::vector<float> probs = MemberProbs(members, calibrations, j, num_classes);
    for (size_t i = 0; i < mean.size(); ++i) mean[i] += probs[i] / members.size();
  }
  return ComputeGroupedMetrics(members[0]->labels, mean, num_classes, members[0]->groups,
                               num_groups);
}

// Cross-fitted members validated on disjoint folds: each member's own validation samples
// (with its calibration, when given), together, scored as one set: out-of-fold metrics.
GroupedMetrics OutOfFoldMetrics(const std::vector<const EvalResult*>& members,
                                const std::vector<const Calibration*>& calibrations,
                                int num_classes, int num_groups) {
  std::vector<float> probs;
  std::vector<int> labels, groups;
  for (size_t j = 0; j < members.size(); ++j) {
    const EvalResult* m = members[j];
    const std::vector<float> p = MemberProbs(members, calibrations, j, num_classes);
    probs.insert(probs.end(), p.begin(), p.end());
    labels.insert(labels.end(), m->labels.begin(), m->labels.end());
    groups.insert(groups.end(), m->groups.begin(), m->groups.end());
  }
  return ComputeGroupedMetrics(labels, probs, num_classes, groups, num_groups);
}

// Prints the ensemble's validation and test metrics and writes RUN_DIR/ensemble.json. With
// `cross_fit` the validation metrics are out of fold.
void ReportEnsemble(const std::vector<uint64_t>& seeds, const std::vector<TrainResult>& results,
                    const PreparedDataset& prepared, const std::string& run_dir, bool cross_fit,
                    Communicator* world, std::ostream* out) {
  const int k = prepared.meta.num_classes();
  const int c_count = static_cast<int>(CombinationNames(prepared).size());
  std::vector<const EvalResult*> validation, test;
  std::vector<const Calibration*> calibrations;
  for (const TrainResult& r : results) {
    validation.push_back(&r.best_validation);
    test.push_back(&r.test);
    calibrations.push_back(&r.calibration);
  }
  const auto validation_metrics = cross_fit ? OutOfFoldMetrics : EnsembleMetrics;
  const GroupedMetrics v = validation_metrics(validation, {}, k, c_count);
  const GroupedMetrics t = EnsembleMetrics(test, {}, k, c_count);
  // With each member's calibration (fitted on its validation samples: in-sample there).
  const GroupedMetrics vc = validation_metrics(validation, calibrations, k, c_count);
  const GroupedMetrics tc = EnsembleMetrics(test, calibrations, k, c_count);
  EnsembleRecord record{
      seeds, ScoreOf(v.overall), ScoreOf(t.overall), ScoreOf(vc.overall), ScoreOf(tc.overall),
      {},    cross_fit};
  const std::vector<std::string> names = CombinationNames(prepared);
  for (int c = 0; c < c_count; ++c) {
    if (t.groups[c].count > 0) record.test_per_combination[names[c]] = ScoreOf(t.groups[c]);
  }
  RunOnRankZero(world, [&] {
    WriteFileAtomically(RunDir(run_dir).ensemble_json(), ToJson(record).dump(1) + "\n");
  });
  if (out == nullptr) return;
  auto pct = [](double v) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2f", 100 * v);
    return std::string(text);
  };
  *out << "the " << seeds.size() << "-seed ensemble (mean probabilities, flexmoe predict "
       << "--ensemble " << run_dir << "): validation AUC " << pct(v.overall.auc)
       << (cross_fit ? " (out of fold)" : "") << "; test (%) ACC " << pct(t.overall.accuracy)
       << ", F1 " << pct(t.overall.macro_f1) << ", AUC " << pct(t.overall.auc) << ", log-loss "
       << t.overall.log_loss << " (calibrated " << tc.overall.log_loss << ") (" << run_dir
       << "/ensemble.json)\n";
}

// Each seed's checkpoint to resume from: `explicit_resume` for every seed, or with `resume`
// each seed directory's newest one (empty: that seed starts over). Rank 0 picks them and
// tells the others (one view of the file system).
std::vector<std::string> ResumePoints(const std::vector<uint64_t>& seeds,
                                      const std::string& run_dir, bool resume,
                                      const std::string& explicit_resume,
                                      const TrainOptions& options) {
  auto seed_dir = [&](uint64_t seed) {
    return seeds.size() == 1 ? RunDir(run_dir) : RunDir(run_dir).seed(seed);
  };
  std::vector<std::string> resume_from(seeds.size(), explicit_resume);
  if (!resume || !explicit_resume.empty()) return resume_from;
  std::string chosen;
  RunOnRankZero(options.world, [&] {
    bool any = false;
    for (size_t i = 0; i < seeds.size(); ++i) {
      const std::string newest = seed_dir(seeds[i]).NewestCheckpoint();
      chosen += newest + "\n";
      any = any || !newest.empty();
    }
    // A restarted job without any checkpoint starts over.
    if (!any && options.restart == 0) {
      Fail(ErrorCode::kNotFound, "train --resume: no complete checkpoint under ",
           seeds.size() == 1
               ? RunDir(run_dir).checkpoints()
               : RunDir(run_dir).seed(seeds[0]).checkpoints() + " or the other seeds' directories");
    }
  });
  if (options.world != nullptr && options.world->size() > 1) {
    BroadcastBytes(*options.world, &chosen, 0);
  }
  for (size_t i = 0, from = 0; i < seeds.size(); ++i) {
    const size_t end = chosen.find('\n', from);
    resume_from[i] = chosen.substr(from, end - from);
    from = end + 1;
  }
  return resume_from;
}

}  // namespace

CheckpointFault CheckpointFaultFromEnv() {
  CheckpointFault fault;
  const std::string value = GetEnv(kEnvCheckpointFault);
  if (value.empty()) return fault;
  if (std::sscanf(value.c_str(), "%d:%d:%d", &fault.checkpoint, &fault.point, &fault.rank) < 2) {
    Fail(ErrorCode::kInvalidArgument, kEnvCheckpointFault, "='", value, "': expected N:K[:R]");
  }
  return fault;
}

std::string RunDirFor(const config::Config& config, bool resume) {
  if (!config.run().dir().empty()) return config.run().dir();
  if (resume) {
    Fail(ErrorCode::kInvalidArgument,
         "train --resume: name the run to continue with --set run.dir=DIR (the directory "
         "holding checkpoints/)");
  }
  return DefaultRunDir();
}

int TrainSeeds(const config::Config& config, const PreparedDataset& prepared, const Samples* data,
               const std::string& run_dir, bool resume, TrainOptions options, std::ostream* out) {
  std::vector<uint64_t> seeds(config.training().seeds().begin(), config.training().seeds().end());
  if (seeds.empty()) seeds.push_back(config.training().seed());
  const std::string& explicit_resume = config.checkpoint().resume_from();
  if (!explicit_resume.empty() && seeds.size() > 1) {
    Fail(ErrorCode::kInvalidArgument, "checkpoint.resume_from names one run's checkpoint; ",
         "with several training.seeds use train --resume");
  }
  auto seed_dir = [&](uint64_t seed) {
    return seeds.size() == 1 ? RunDir(run_dir) : RunDir(run_dir).seed(seed);
  };
  const std::vector<std::string> resume_from =
      ResumePoints(seeds, run_dir, resume, explicit_resume, options);
  options.fault = CheckpointFaultFromEnv();
  // Cross-fitting: seed i's model trains on the other folds and validates on fold i.
  const bool cross_fit = config.training().cross_fit();
  std::vector<double> acc, f1, auc;
  std::vector<TrainResult> results;
  for (size_t i = 0; i < seeds.size(); ++i) {
    FoldOfData fold;
    std::optional<PreparedDataset> fold_data;
    if (cross_fit) {
      fold = {static_cast<int>(seeds.size()), static_cast<int>(i), seeds[0]};
      fold_data = WithFoldAsValidation(prepared, fold);
    }
    const PreparedDataset& member = cross_fit ? *fold_data : prepared;
    options.run_dir = seed_dir(seeds[i]).path();
    options.resume_from = resume_from[i];
    // A seed that left no checkpoint starts over, its log too.
    options.restart_metrics = resume && resume_from[i].empty();
    options.batches = LoaderBatchesFromConfig(config, member, seeds[i], fold);
    if (out != nullptr && resume && resume_from[i].empty()) {
      *out << "seed " << seeds[i] << ": no checkpoint in " << RunDir(options.run_dir).checkpoints()
           << ", starting from the beginning\n";
    }
    if (out != nullptr && cross_fit) {
      *out << "seed " << seeds[i] << ": cross-fitted, validating on fold " << i + 1 << " of "
           << seeds.size() << " (" << member.split_size(1) << " samples), training on "
           << member.split_size(0) << "\n";
    }
    TrainResult result = Train(config, member, data, seeds[i], options);
    if (result.stopped) {
      if (out != nullptr) {
        *out << "stopped (preempted) in seed " << seeds[i] << "; newest checkpoint "
             << (result.last_checkpoint.empty() ? std::string("none") : result.last_checkpoint)
             << "; continue with --resume\n";
      }
      return 0;
    }
    acc.push_back(result.test.metrics.overall.accuracy);
    f1.push_back(result.test.metrics.overall.macro_f1);
    auc.push_back(result.test.metrics.overall.auc);
    if (out != nullptr) *out << "best parameters: " << result.checkpoint_dir << "\n";
    results.push_back(std::move(result));
  }
  if (out != nullptr && seeds.size() > 1) {
    // Population std (ddof 0), as the authors' reporting does with np.std.
    *out << "\ntest over " << seeds.size() << " seeds (mean +- std, %): ACC "
         << FormatMeanStd(MeanStd(acc, 0)) << ", F1 " << FormatMeanStd(MeanStd(f1, 0)) << ", AUC "
         << FormatMeanStd(MeanStd(auc, 0)) << "\n";
  }
  if (seeds.size() > 1) {
    ReportEnsemble(seeds, results, prepared, run_dir, cross_fit, options.world, out);
  }
  return 0;
}

}  // namespace flexmoe
