// The workers' reports into the run's records (report_router.h).
#include "cluster/coord/report_router.h"

#include <glog/logging.h>

#include "cluster/base/error.h"
#include "cluster/web/job_view.h"

namespace flexmoe {

ReportRouter::ReportRouter(std::string run_dir, bool tensorboard, int per_worker_limit,
                           JobView* view, std::function<void(int64_t)> flushed,
                           std::function<void(const std::string&)> failed)
    : run_dir_(std::move(run_dir)),
      per_worker_limit_(per_worker_limit),
      view_(view),
      writer_(tensorboard, std::move(flushed), std::move(failed)) {}

void ReportRouter::Start(int world_size) {
  if (joiner_ == nullptr) joiner_ = std::make_unique<RecordJoiner>(world_size, per_worker_limit_);
}

ReportRouter::Taken ReportRouter::Take(int rank, const coordinator::Report& report) {
  if (joiner_ == nullptr) Fail(ErrorCode::kInvalidArgument, "only workers report");
  const bool zero = rank == 0;
  if (!zero && (report.has_open() || report.continue_at() >= 0 || report.has_checkpoint())) {
    Fail(ErrorCode::kInvalidArgument, "only worker 0 opens runs, continues logs and reports ",
         "checkpoints");
  }
  if (report.flush() > 0 && !zero) Fail(ErrorCode::kInvalidArgument, "only worker 0 flushes");
  Taken taken;
  if (report.has_open()) {
    const std::string& name = report.open();
    if (name.find('/') != std::string::npos || name == "." || name == "..") {
      Fail(ErrorCode::kInvalidArgument, "run directory '", name, "' is not a seed directory");
    }
    Apply(joiner_->Open(name));
  }
  if (report.continue_at() >= 0) Apply(joiner_->ContinueAt(report.continue_at()));
  if (report.has_record()) {
    nlohmann::json record = nlohmann::json::parse(report.record(), nullptr, false);
    if (!record.is_object()) Fail(ErrorCode::kInvalidArgument, "a record that is not JSON");
    Apply(joiner_->Add(rank, std::move(record)));
  }
  if (report.flush() > 0) Apply(joiner_->Flush(report.flush()));
  if (report.has_checkpoint()) {
    newest_checkpoint_ = report.checkpoint();
    taken.checkpoint = true;
  }
  return taken;
}

void ReportRouter::Apply(std::vector<MetricsItem> items) {
  for (MetricsItem& item : items) {
    if (item.flush > 0) {
      writer_.Flush(item.flush);
    } else if (item.opens) {
      // A run without a directory writes nothing.
      writer_.Open(run_dir_.empty()    ? ""
                   : item.open.empty() ? run_dir_
                                       : run_dir_ + "/" + item.open);
    } else if (item.continue_at >= 0) {
      writer_.ContinueAt(item.continue_at);
    } else {
      view_->AddRecord(item.record);
      writer_.Write(std::move(item.record));
    }
  }
}

}  // namespace flexmoe
