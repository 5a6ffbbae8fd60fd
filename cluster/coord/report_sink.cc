// Metrics records and checkpoints reported to the coordinator (report_sink.h).
#include "cluster/coord/report_sink.h"

#include <filesystem>

#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/metrics/metrics_writer.h"

namespace flexmoe {

void CoordinatorReportSink::Open(const std::string& run_dir) {
  namespace fs = std::filesystem;
  const fs::path job = fs::weakly_canonical(client_->accepted().run_dir());
  const fs::path run = fs::weakly_canonical(run_dir);
  coordinator::Report report;
  if (run == job) {
    report.set_open("");
  } else if (run.parent_path() == job) {
    report.set_open(run.filename().string());
  } else {
    Fail(ErrorCode::kInvalidArgument, "metrics of ", run_dir, ": the coordinator writes into ",
         client_->accepted().run_dir(), " and its seed directories only");
  }
  // The coordinator writes this directory's log from here on; what it has is what it holds.
  path_ = RunDir(run_dir).metrics();
  base_ = CountLines(path_);
  sent_ = 0;
  client_->Report(std::move(report));
}

void CoordinatorReportSink::WorkerStep(int rank, const nlohmann::json& record) {
  coordinator::Report report;
  report.set_record(record.dump());
  client_->Report(std::move(report));
  if (rank == 0) ++sent_;
}

void CoordinatorReportSink::RunRecord(const nlohmann::json& record) {
  coordinator::Report report;
  report.set_record(record.dump());
  client_->Report(std::move(report));
  ++sent_;
}

void CoordinatorReportSink::ContinueAt(int64_t lines) {
  // Checked here too, so that worker 0 names the problem (the coordinator would end the job).
  const int64_t have = CountLines(path_);
  std::error_code ec;
  const bool exists = std::filesystem::exists(path_, ec);
  if (have < lines && exists) {
    Fail(ErrorCode::kDataLoss, path_, ": ", have, " lines, but the checkpoint was taken after ",
         lines, " (the metrics log was cut short)");
  }
  coordinator::Report report;
  report.set_continue_at(lines);
  client_->Report(std::move(report));
  base_ = exists ? lines : 0;  // a missing log starts afresh (a checkpoint copied elsewhere)
  sent_ = 0;
}

void CoordinatorReportSink::Flush() {
  coordinator::Report report;
  report.set_flush(++flushes_);
  client_->Report(std::move(report));
  client_->WaitForFlush(flushes_, 60);
}

void CoordinatorReportSink::Checkpointed(const std::string& dir) {
  coordinator::Report report;
  report.set_checkpoint(dir);
  client_->Report(std::move(report));
}

}  // namespace flexmoe
