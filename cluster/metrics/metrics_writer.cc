// metrics.jsonl and the TensorBoard scalars of its records (metrics_writer.h).
#include "cluster/metrics/metrics_writer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/metrics/run_records.h"

namespace flexmoe {
namespace {

using Json = nlohmann::json;

// A record's number; NaN (an undefined score, or absent) is no scalar.
void Add(std::vector<TensorBoardScalar>* out, const std::string& tag, int64_t step, double value) {
  if (!std::isnan(value)) out->push_back({tag, step, value});
}

std::string Two(int64_t v) {
  char buffer[24];
  std::snprintf(buffer, sizeof(buffer), "%02lld", static_cast<long long>(v));
  return buffer;
}

// experts/layerL/expertE: the tokens expert E of layer L received in the window; and
// expert_load/layerL/cC/expertE: those of combination C (non-zero entries).
void TokenScalars(const TokenCounts& tokens, int64_t step, std::vector<TensorBoardScalar>* out) {
  for (size_t l = 0; l < tokens.layers.size() && l < tokens.counts.size(); ++l) {
    const std::string layer = "layer" + std::to_string(tokens.layers[l]);
    for (int64_t e = 0; e < tokens.experts; ++e) {
      double total = 0;
      for (int64_t c = 0; c < tokens.combinations; ++c) {
        const double n = static_cast<double>(tokens.counts[l][e * tokens.combinations + c]);
        total += n;
        if (n > 0) {
          out->push_back({"expert_load/" + layer + "/c" + Two(c) + "/expert" + Two(e), step, n});
        }
      }
      out->push_back({"experts/" + layer + "/expert" + Two(e), step, total});
    }
  }
}

}  // namespace

std::vector<TensorBoardScalar> TensorBoardScalarsOf(const Json& record) {
  std::vector<TensorBoardScalar> out;
  if (const std::optional<StepLine> line = StepLineFrom(record)) {
    const int64_t step = line->at.global_step + 1;
    Add(&out, "step/loss", step, line->at.loss);
    Add(&out, "step/task_loss", step, line->at.task_loss);
    Add(&out, "step/router_loss", step, line->at.router_loss);
    Add(&out, "throughput/step_samples_per_s", step, line->samples_per_s);
    Add(&out, "step_ms/compute", step, line->step_ms.compute);
    Add(&out, "step_ms/exchange", step, line->step_ms.exchange);
    Add(&out, "step_ms/reduce", step, line->step_ms.reduce);
    Add(&out, "step_ms/data", step, line->step_ms.data);
    TokenScalars(line->tokens, step, &out);
  } else if (const std::optional<EpochLine> epoch = EpochLineFrom(record)) {
    const int64_t step = epoch->global_step;
    Add(&out, "epoch/train_loss", step, epoch->train_loss);
    Add(&out, "epoch/task_loss", step, epoch->task_loss);
    Add(&out, "epoch/router_loss", step, epoch->router_loss);
    Add(&out, "validation/accuracy", step, epoch->validation.acc);
    Add(&out, "validation/macro_f1", step, epoch->validation.f1);
    Add(&out, "validation/auc", step, epoch->validation.auc);
    Add(&out, "throughput/samples_per_s", step, epoch->samples_per_s);
    Add(&out, "experts/imbalance", step, epoch->expert_imbalance);
  } else if (const std::optional<TestLine> test = TestLineFrom(record)) {
    const int64_t step = test->best_epoch;
    Add(&out, "test/accuracy", step, test->test.acc);
    Add(&out, "test/macro_f1", step, test->test.f1);
    Add(&out, "test/auc", step, test->test.auc);
  }
  return out;
}

int64_t CountLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  int64_t lines = 0;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) lines += buffer[i] == '\n';
  }
  return lines;
}

MetricsWriter::MetricsWriter(const std::string& run_dir, bool tensorboard) {
  if (run_dir.empty()) return;
  std::filesystem::create_directories(run_dir);
  path_ = RunDir(run_dir).metrics();
  lines_ = CountLines(path_);
  if (tensorboard) events_ = std::make_unique<EventWriter>(RunDir(run_dir).tensorboard());
}

MetricsWriter::~MetricsWriter() = default;

void MetricsWriter::Write(const Json& record) {
  if (path_.empty()) return;
  {
    std::ofstream out(path_, std::ios::app);
    out << record.dump() << "\n";
    out.flush();
    if (!out) Fail(ErrorCode::kInternal, path_, ": cannot append metrics");
  }
  ++lines_;
  if (events_ == nullptr) return;
  for (const TensorBoardScalar& s : TensorBoardScalarsOf(record)) {
    events_->Scalar(s.tag, s.step, s.value);
  }
  events_->Flush();
}

void MetricsWriter::ContinueAt(int64_t lines) {
  if (path_.empty()) return;
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return;  // a checkpoint copied into a new run
  // The byte offset just past line `lines`.
  std::ifstream in(path_, std::ios::binary);
  int64_t seen = 0;
  uintmax_t offset = 0;
  char c;
  while (seen < lines && in.get(c)) {
    ++offset;
    seen += c == '\n';
  }
  if (seen < lines) {
    Fail(ErrorCode::kDataLoss, path_, ": ", seen, " lines, but the checkpoint was taken after ",
         lines, " (the metrics log was cut short)");
  }
  in.close();
  std::filesystem::resize_file(path_, offset);
  lines_ = lines;
}

}  // namespace flexmoe
