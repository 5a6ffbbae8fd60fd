// The metrics writer's own thread (async_metrics_writer.h).
#include "cluster/metrics/async_metrics_writer.h"

#include <exception>
#include <utility>

#include "cluster/base/error.h"

namespace flexmoe {

AsyncMetricsWriter::AsyncMetricsWriter(bool tensorboard, std::function<void(int64_t)> flushed,
                                       std::function<void(const std::string&)> failed)
    : tensorboard_(tensorboard),
      flushed_(std::move(flushed)),
      failed_(std::move(failed)),
      thread_([this] { Loop(); }) {}

AsyncMetricsWriter::~AsyncMetricsWriter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    quit_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void AsyncMetricsWriter::Open(const std::string& dir) { Push({Op::kOpen, dir, 0, {}}); }

void AsyncMetricsWriter::ContinueAt(int64_t lines) { Push({Op::kContinueAt, "", lines, {}}); }

void AsyncMetricsWriter::Write(nlohmann::json record) {
  Push({Op::kWrite, "", 0, std::move(record)});
}

void AsyncMetricsWriter::Flush(int64_t number) { Push({Op::kFlush, "", number, {}}); }

void AsyncMetricsWriter::Push(Op op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ops_.push_back(std::move(op));
  }
  wake_.notify_one();
}

void AsyncMetricsWriter::Loop() {
  while (true) {
    Op op;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return quit_ || !ops_.empty(); });
      if (ops_.empty()) return;  // quit, and everything queued is written
      op = std::move(ops_.front());
      ops_.pop_front();
    }
    Apply(op);
  }
}

void AsyncMetricsWriter::Apply(Op& op) {
  if (op.kind == Op::kFlush) {
    if (!broken_ && flushed_) flushed_(op.number);  // after a failure nothing is confirmed
    return;
  }
  if (broken_) return;
  try {
    switch (op.kind) {
      case Op::kOpen:
        writer_ = op.dir.empty() ? nullptr : std::make_unique<MetricsWriter>(op.dir, tensorboard_);
        break;
      case Op::kContinueAt:
        if (writer_ != nullptr) writer_->ContinueAt(op.number);
        break;
      default:
        if (writer_ != nullptr) writer_->Write(op.record);
    }
  } catch (const std::exception& e) {  // flexmoe's errors, and the file system's
    broken_ = true;
    if (failed_) failed_(e.what());
  }
}

}  // namespace flexmoe
