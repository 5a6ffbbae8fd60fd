// A run directory's view (run_dir_view.h).
#include "cluster/web/run_dir_view.h"

#include <algorithm>
#include <fstream>

#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/metrics/job_record.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;

// The run's metrics.jsonl files: its own, then seed-N/ in the order of N.
std::vector<fs::path> MetricsFiles(const std::string& run_dir) {
  const RunDir dir(run_dir);
  std::vector<fs::path> files;
  if (fs::exists(dir.metrics())) files.push_back(dir.metrics());
  for (uint64_t seed : dir.seeds()) {
    if (fs::exists(dir.seed(seed).metrics())) files.push_back(dir.seed(seed).metrics());
  }
  return files;
}

}  // namespace

JobViewState ReadRunDirView(const std::string& run_dir) {
  JobViewState state;
  state.source = "run_dir";
  state.job = ReadJobRecord(run_dir);
  state.newest_checkpoint_step = CheckpointStep(state.job.newest_checkpoint);
  for (const JobMemberRecord& m : state.job.members) state.members.push_back({m, std::nullopt});
  for (const fs::path& file : MetricsFiles(run_dir)) {
    std::ifstream in(file);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
      if (!record.is_object()) continue;
      try {
        AddRunRecord(state, record);
      } catch (const Error& e) {
        Fail(ErrorCode::kDataLoss, file.string(), ":", number, ": ", e.what());
      }
    }
  }
  return state;
}

RunDirView::RunDirView(std::string run_dir) : run_dir_(std::move(run_dir)) {}

std::string RunDirView::Stamp() const {
  std::string stamp;
  std::vector<fs::path> files = MetricsFiles(run_dir_);
  files.push_back(RunDir(run_dir_).job_json());
  for (const fs::path& f : files) {
    std::error_code ec;
    const auto size = fs::file_size(f, ec);
    const auto time = fs::last_write_time(f, ec).time_since_epoch().count();
    stamp += f.string() + ":" + std::to_string(size) + ":" + std::to_string(time) + ";";
  }
  return stamp;
}

JobViewState RunDirView::Snapshot() {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string stamp = Stamp();
  if (stamp != stamp_) {
    cached_ = ReadRunDirView(run_dir_);
    stamp_ = stamp;
  }
  return cached_;
}

}  // namespace flexmoe
