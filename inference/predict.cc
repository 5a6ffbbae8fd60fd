// Streaming prediction into an atomically written CSV (predict.h).
#include "inference/predict.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "data_loader/combinations.h"
#include "inference/prediction_input.h"

namespace flexmoe {
namespace {

std::string Number(float value) {
  if (std::isnan(value)) return "";
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", value);
  return text;
}

std::string Header(const LoadedModel& model, bool explain) {
  std::string line = CsvField(model.config.data().id_column());
  for (const std::string& name : model.class_names()) line += "," + CsvField(name);
  if (explain) {
    for (const std::string& m : model.modality_names()) line += "," + CsvField("attribution_" + m);
  }
  return line + ",modalities\n";
}

}  // namespace

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

PredictSummary Predict(const std::vector<LoadedModel*>& members, const PredictOptions& options) {
  if (members.empty()) Fail(ErrorCode::kInvalidArgument, "predict: no checkpoint");
  const auto start = std::chrono::steady_clock::now();
  const LoadedModel& first = *members[0];
  for (const LoadedModel* member : members) CheckSameLayout(first, *member);
  PredictionInput input(first, options.input, /*labels_required=*/false);
  const int k_count = first.num_classes(), m_count = first.num_modalities();
  const std::vector<std::string> combination_names = first.combination_names();
  AtomicFile out(options.out);
  out.Write(Header(first, options.score.explain));
  PredictSummary summary;
  InputBatch rows;
  std::string text;
  while (input.Next(options.batch_rows, &rows)) {
    BatchScores scores;
    if (rows.batch.size > 0) scores = ScoreBatch(members, rows.batch, options.score);
    text.clear();
    int scored = 0;
    for (size_t r = 0; r < rows.ids.size(); ++r) {
      text += CsvField(rows.ids[r]);
      if (!rows.has_modality[r]) {
        text.append(k_count + (options.score.explain ? m_count : 0), ',');
        text += ",none\n";
        ++summary.without_modality;
        if (summary.first_without_modality.size() < 10) {
          summary.first_without_modality.push_back(rows.ids[r]);
        }
        continue;
      }
      for (int k = 0; k < k_count; ++k) text += "," + Number(scores.probs[scored * k_count + k]);
      if (options.score.explain) {
        for (int m = 0; m < m_count; ++m) {
          text += "," + Number(scores.attribution[scored * m_count + m]);
        }
      }
      text += "," + CsvField(combination_names[rows.batch.combination[scored]]) + "\n";
      ++scored;
    }
    out.Write(text);
    summary.rows += static_cast<int64_t>(rows.ids.size());
    summary.scored += scored;
  }
  out.Commit();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace flexmoe
