// Sharded, atomic training-state checkpoints (docs/checkpoints.md). Every rank calls
// Save at the same step: rank 0 writes the replicated parameters (bank included), their
// Adam moments and best-epoch values; each expert's owner (in expert-parallel group 0)
// writes its experts the same way, one tensor per (layer, global expert id); rank 0
// gathers the file list and writes the manifest last, into a temporary directory that is
// fsynced and renamed to checkpoints/step-<global step, 8 digits>. The newest keep_last
// complete checkpoints are kept. Load restores a checkpoint written at any world size:
// rank 0 verifies every file first, then each rank reads only the files it needs, and the
// experts are re-sharded by the current placement.
//
// The checkpoint directory must be on a file system every rank sees (a shared run
// directory on a cluster; any directory on one machine).
#pragma once

#include <cstdint>
#include <string>

#include "cluster/base/expert_placement.h"
#include "cluster/comm/communicator.h"
#include "proto/config.pb.h"
#include "trainer/checkpoint/resumable_manifest.h"
#include "trainer/checkpoint/train_state.h"

namespace flexmoe {

// Test-only fault injection: the process kills itself (SIGKILL) at a point of a checkpoint
// write, to show that a crash anywhere leaves the previous checkpoint valid.
struct CheckpointFault {
  int checkpoint = 0;  // the n-th checkpoint this process writes (1-based); 0: never
  int point = 0;       // after its k-th file or directory operation (1-based); 0: once complete
  int rank = 0;        // the world rank that dies
};

struct CheckpointContext {
  Communicator* world = nullptr;  // null: one process
  int expert_rank = 0;            // this rank in its expert-parallel group
  bool saves_experts = true;      // this rank is in expert-parallel group 0
  int expert_parallel_degree = 1;
  // The current placement (over the expert-parallel group), owned by the trainer's layout:
  // a re-pack changes it there, and later saves and loads follow.
  const PlacementMap* placement = nullptr;
  std::string config_text;  // the resolved config, saved as config.textproto
  uint32_t config_hash = 0;
  uint32_t dataset_index_crc32c = 0;
  uint64_t dataset_samples = 0;
  int keep_last = 0;  // 0 keeps all
  CheckpointFault fault;
};

// What a run resuming from a checkpoint must match.
struct ResumeTarget {
  const config::Config* config = nullptr;  // the run's resolved config
  std::string prepared_dir;                // for messages
  uint32_t dataset_index_crc32c = 0;
  uint64_t dataset_samples = 0;
  uint64_t seed = 0;
};

// Checks a verified checkpoint `dir` (its manifest and saved config) against the run that
// resumes from it: kInvalidArgument naming what differs (a field of the computation, the
// dataset, the seed, a position beyond training.epochs); kDataLoss when the saved config
// does not match the manifest's hash.
void CheckResumable(const std::string& dir, const TrainManifest& manifest,
                    const ResumeTarget& target);

// Not thread-safe. One per run; every rank constructs it with the same directory.
class TrainCheckpointer {
 public:
  TrainCheckpointer(CheckpointContext context, std::string checkpoints_dir);

  // Writes `state` and returns the new checkpoint's directory. A collective over the world.
  std::string Save(const TrainState& state);
  // Rank 0 verifies every file of `dir` (sizes, CRC32C, tensor lists); every rank throws
  // when it refuses (kNotFound / kDataLoss naming the file on rank 0). A collective.
  TrainManifest Verify(const std::string& dir);
  // Moves the complete checkpoints of this run later than `step` (a continuation abandoned
  // by resuming an older checkpoint) to checkpoints/abandoned-step-*, where neither --resume
  // nor pruning looks. Returns how many. A collective.
  int SetAsideLaterThan(int64_t step);
  // Restores `state` (shapes as the current model's) from a verified `dir` written at any
  // world size; each rank reads (and checks again) only the files holding its tensors.
  // kInvalidArgument when the checkpoint does not fit the model.
  TrainManifest Load(const std::string& dir, TrainState* state);

  const std::string& checkpoints_dir() const { return dir_; }

 private:
  int rank() const;
  // Counts a durable operation of the current save and dies there if the fault says so.
  void Done();
  FileEntry WriteReplicated(const TrainState& state, const std::string& staging);
  FileEntry WriteExperts(const TrainState& state, const std::string& staging);
  // Rank 0: the config and the manifest, last, into the staging directory.
  void WriteManifest(const TrainState& state, const std::string& staging,
                     std::vector<FileEntry> files);
  void Prune();

  CheckpointContext context_;
  std::string dir_;
  int saves_ = 0;       // checkpoints written by this process
  int operations_ = 0;  // durable operations of the current save
};

}  // namespace flexmoe
