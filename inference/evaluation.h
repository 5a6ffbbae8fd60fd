// `flexmoe eval`: an export scored on a split of the prepared dataset it was trained on
// (the same code as training's test evaluation, so the table is training's) or on a
// labelled input file; with the calibration (expected calibration error, log-loss and Brier
// score before and after the stored calibration, overall and per combination, and the
// reliability bins) and the
// mean absolute modality attribution per combination; as a text table and as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "inference/loaded_model.h"
#include "trainer/train/calibration.h"
#include "trainer/train/evaluate.h"

namespace flexmoe {

struct EvalOptions {
  std::string split = "test";  // test, validation or training (prepared dataset)
  std::string input;           // a labelled input instead of a split
  bool explain = true;         // the attribution (one extra forward per modality)
  // At most this many samples explained (every k-th of the scored ones, k the smallest that
  // fits); 0: all. The report after `flexmoe train` explains 20,000: 150,000 test samples
  // took over 10 minutes on 2 cores.
  int64_t max_explained = 0;
};

struct EvalReport {
  std::string checkpoint;
  std::string source;  // "split test of DIR" or the input path
  EvalResult result;
  int64_t without_modality = 0;  // input rows that could not be scored
  Calibration calibration;       // the export's (temperature and biases)
  // The metrics of the calibrated probabilities (result.metrics: uncalibrated, with the
  // prior-shift correction of the class weights).
  ClassificationMetrics calibrated_metrics;
  Reliability reliability;             // uncalibrated
  Reliability calibrated_reliability;  // probabilities under the stored calibration
  std::vector<Reliability> per_combination;
  std::vector<Reliability> calibrated_per_combination;
  // [C][M]: mean |attribution| of modality m over the samples of combination c that have
  // it and another one (NaN where none), and their counts.
  std::vector<std::vector<double>> attribution;
  std::vector<std::vector<int64_t>> attribution_count;
  std::vector<std::string> class_names, modality_names, combination_names;
};

EvalReport EvaluateExport(LoadedModel& model, const EvalOptions& options);

// The per-combination table training prints, then calibration and attribution.
std::string FormatEvalReport(const EvalReport& report);
nlohmann::json EvalReportJson(const EvalReport& report);

// The split index of "training", "validation" or "test"/"testing" (kInvalidArgument else).
uint32_t SplitIndex(const std::string& name);

}  // namespace flexmoe
