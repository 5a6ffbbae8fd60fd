// The view of a finished, failed or running job from its run directory, for
// `flexmoe serve RUN_DIR`: job.json and the run records of metrics.jsonl (the run's, then
// each seed-N directory's in seed order). Re-read when a file changed, between requests.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/web/job_view.h"

namespace flexmoe {

// kNotFound naming the directory when it has no job.json; kDataLoss naming the file when a
// record is of the wrong shape. A line that is not JSON (the torn last line of a killed
// job) is skipped.
JobViewState ReadRunDirView(const std::string& run_dir);

// ReadRunDirView, cached until job.json or a metrics.jsonl changes (size or time).
class RunDirView {
 public:
  explicit RunDirView(std::string run_dir);
  JobViewState Snapshot();

 private:
  std::string Stamp() const;

  std::string run_dir_;
  std::mutex mutex_;
  std::string stamp_;
  JobViewState cached_;
};

}  // namespace flexmoe
