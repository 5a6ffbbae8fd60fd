// job.json as a typed record: what the coordinator writes (every change of the job's state,
// members, placement and newest checkpoint) and what the launcher and tools read, with one
// to/from-JSON pair. docs/coordinator.md describes the fields.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cluster/base/expert_placement.h"

namespace flexmoe {

struct JobMemberRecord {
  std::string role;  // "worker" or "loader"
  int rank = 0;
  std::string host;
  int port = 0;  // a listening port, 0 for none (workers)
  int64_t pid = 0;
  // running, left, stopped (told to stop as the job ended), failed (the culprit), gone
  // (its connection closed). The culprit record has none.
  std::string state;
};

struct JobRecord {
  std::string job_id;
  std::string state;        // starting, running, finished, preempted, failed
  std::string coordinator;  // its address
  int workers = 0;
  std::vector<JobMemberRecord> members;
  PlacementMap placement;
  std::string newest_checkpoint;
  std::string reason;                      // why it ended, when it did not finish
  std::optional<JobMemberRecord> culprit;  // the member whose death ended the job
  // The prepared dataset's modality combinations by index (the expert heatmap's rows); empty
  // when the coordinator could not read them.
  std::vector<std::string> combinations;
};

nlohmann::json JobRecordToJson(const JobRecord& job);
// kDataLoss naming `source` when a field is missing or of the wrong type.
JobRecord JobRecordFromJson(const nlohmann::json& json, const std::string& source);
// RUN_DIR/job.json; kNotFound when there is none, kDataLoss when it does not parse.
JobRecord ReadJobRecord(const std::string& run_dir);

}  // namespace flexmoe
