// `flexmoe predict`: scores every row of an input (prediction_input.h) with one model or an
// ensemble and writes a CSV: the id, one probability per class headed by the class names,
// with --explain one attribution column per modality, then the row's observed modalities.
// A row without any modality keeps its line with empty probabilities and is counted. The
// file is written under a temporary name and renamed once complete: bad input leaves no
// partial output (and any earlier file at the path untouched).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inference/loaded_model.h"
#include "inference/scorer.h"

namespace flexmoe {

struct PredictOptions {
  std::string input;
  std::string out;
  ScoreOptions score;
  int batch_rows = 256;
};

struct PredictSummary {
  int64_t rows = 0;
  int64_t scored = 0;
  int64_t without_modality = 0;
  std::vector<std::string> first_without_modality;  // up to 10 ids, for the message
  double seconds = 0;
};

PredictSummary Predict(const std::vector<LoadedModel*>& members, const PredictOptions& options);

// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
std::string CsvField(const std::string& text);

}  // namespace flexmoe
