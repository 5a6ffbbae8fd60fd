// Classification metrics (accuracy, macro-F1, ROC AUC), the same metrics per group (e.g.
// per modality combination), mean +- std over seeds, and a text table of per-group results.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flexmoe {

// Inputs shared by the functions below:
//   labels: N class ids in [0, K);
//   probs:  row-major [N, K] class probabilities (or any scores: only their order matters
//           for AUC, and the argmax for the prediction). Must be finite.
// Invalid shapes, labels out of range or non-finite scores throw Error(kInvalidArgument).
// Metrics that are undefined (no samples; AUC with one class only) are NaN.

// Argmax per row; the first maximum wins on ties.
std::vector<int> PredictArgmax(const std::vector<float>& probs, int num_classes);

// Fraction of rows whose argmax equals the label; NaN when N == 0.
double Accuracy(const std::vector<int>& labels, const std::vector<float>& probs, int num_classes);

// Macro-F1 as sklearn's f1_score(average='macro') with its default labels: per-class
// F1 = 2TP / (2TP + FP + FN), averaged over the classes that occur in the labels or in
// the predictions. A class with no true and no predicted sample is left out of the
// average (it is not counted as 0 or 1); a class present in only one of them scores 0
// (sklearn's zero_division=0). NaN when N == 0.
double MacroF1(const std::vector<int>& labels, const std::vector<float>& probs, int num_classes);

// ROC AUC by the Mann-Whitney statistic, tied scores counting 1/2, O(N log N).
// K == 2: AUC of probs[:, 1] for class 1 (as sklearn's roc_auc_score(y, p[:, 1])).
// K > 2: one-vs-rest, macro average over the classes that have at least one positive and
// one negative sample; classes absent from the labels are skipped (sklearn raises there).
// NaN when no class qualifies (e.g. a single class present) or K < 2.
double RocAuc(const std::vector<int>& labels, const std::vector<float>& probs, int num_classes);

// AUC of `scores` for the binary labels `positive` (Mann-Whitney, ties 1/2); NaN unless
// both classes are present.
double BinaryAuc(const std::vector<bool>& positive, const std::vector<float>& scores);

struct ClassificationMetrics {
  int64_t count = 0;  // number of samples
  double accuracy = 0;
  double macro_f1 = 0;
  double auc = 0;
  // Mean negative log-likelihood of the labels (unweighted, probabilities clipped to
  // [1e-15, 1] as sklearn's log_loss) and the Brier score: for two classes the mean of
  // (p1 - y)^2 (sklearn's brier_score_loss), for more the mean over rows of the squared
  // distance between the probability vector and the one-hot label. NaN when N == 0.
  double log_loss = 0;
  double brier = 0;
};

// All three metrics at once.
ClassificationMetrics ComputeMetrics(const std::vector<int>& labels,
                                     const std::vector<float>& probs, int num_classes);

struct GroupedMetrics {
  std::vector<ClassificationMetrics> groups;  // one per group id; count 0 and NaN when empty
  ClassificationMetrics overall;              // over all samples
};

// Metrics per group: group_ids[i] in [0, num_groups) is sample i's group (e.g. its
// modality-combination index).
GroupedMetrics ComputeGroupedMetrics(const std::vector<int>& labels,
                                     const std::vector<float>& probs, int num_classes,
                                     const std::vector<int>& group_ids, int num_groups);

struct MeanAndStd {
  double mean = 0;
  double std = 0;
};

// Mean and standard deviation with `ddof` delta degrees of freedom: ddof = 1 (default) is
// the sample std (N - 1), ddof = 0 is numpy's np.std (the reference code's choice). A
// single value has std 0; an empty vector gives NaN for both.
MeanAndStd MeanStd(const std::vector<double>& values, int ddof = 1);

// "mean +- std" with `scale` applied (100 for percentages), e.g. "65.83 +- 1.20".
std::string FormatMeanStd(const MeanAndStd& value, double scale = 100, int precision = 2);

// A text table as in the paper: one row per non-empty group (name, n, ACC, F1, AUC in % with
// two decimals, "-" where undefined), then an "overall" row. group_names must have one
// name per group.
std::string FormatGroupTable(const GroupedMetrics& metrics,
                             const std::vector<std::string>& group_names);

}  // namespace flexmoe
