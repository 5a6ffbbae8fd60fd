// A run directory's names, in one place (docs/run_dir.md lists every file, who writes it
// and when): RunDir(path).job_json() and the like, the seed-<s> directories of an ensemble,
// and the one rule for "the newest complete training-state checkpoint". Torch-free; the
// typed records live beside their writers (cluster/metrics/job_record.h for job.json,
// cluster/base/run_lease.h for job.lease, trainer/checkpoint for checkpoints/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flexmoe {

// The file that makes a checkpoint directory (training state or export) complete: written
// last, after every file it lists.
inline constexpr char kManifestFile[] = "manifest.json";

class RunDir {
 public:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  std::string job_json() const { return Join("job.json"); }
  std::string job_token() const { return Join("job.token"); }
  std::string web_token() const { return Join("web.token"); }
  std::string lease() const { return Join("job.lease"); }
  std::string metrics() const { return Join("metrics.jsonl"); }
  std::string tensorboard() const { return Join("tensorboard"); }
  std::string config() const { return Join("config.textproto"); }
  // The members' logs: the coordinator's; the local job's loader; the loaders of a hostfile
  // job (one mpirun); a SLURM job's loader on `node` (srun --output=...-%N.log).
  std::string coordinator_log() const { return Join("coordinator.log"); }
  std::string loader_log() const { return Join("loader.log"); }
  std::string loaders_log() const { return Join("loaders.log"); }
  std::string node_loader_log(const std::string& node) const {
    return Join("loader-" + node + ".log");
  }
  // The hostfile of a hostfile job's attempt (its hosts and slots), while it runs.
  std::string attempt_hostfile(int attempt) const {
    return Join(".hostfile." + std::to_string(attempt));
  }
  std::string ensemble_json() const { return Join("ensemble.json"); }
  // The training-state checkpoints (step-<8 digits>/) and the best-parameters export.
  std::string checkpoints() const { return Join("checkpoints"); }
  std::string export_dir() const { return Join("checkpoint"); }
  std::string eval_dir() const { return Join("eval"); }
  std::string report_dir() const { return Join("report"); }

  // An ensemble member's directory, seed-<seed>.
  RunDir seed(uint64_t seed) const { return RunDir(Join("seed-" + std::to_string(seed))); }
  // The seed-<n> directories present, in the order of n (not of their names).
  std::vector<uint64_t> seeds() const;

  // The complete checkpoints under checkpoints(), oldest first; the newest, or "".
  std::vector<std::string> CompleteCheckpoints() const;
  std::string NewestCheckpoint() const;

 private:
  std::string Join(const std::string& name) const { return path_ + "/" + name; }
  std::string path_;
};

// The checkpoint directories step-<8 or more digits> under `checkpoints_dir` that have a
// manifest, in the order of their steps (temporary and incomplete ones skipped): the one
// rule for a complete checkpoint.
std::vector<std::string> CompleteCheckpoints(const std::string& checkpoints_dir);

}  // namespace flexmoe
