// Accuracy, macro-F1, Mann-Whitney ROC AUC, per-group metrics and result formatting
// (see metrics.h).
#include "trainer/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Validates the shapes, the label range and the scores; returns N.
size_t CheckInputs(const std::vector<int>& labels, const std::vector<float>& probs,
                   int num_classes) {
  if (num_classes < 1) Fail(ErrorCode::kInvalidArgument, "metrics: num_classes ", num_classes);
  const size_t n = labels.size();
  if (probs.size() != n * static_cast<size_t>(num_classes)) {
    Fail(ErrorCode::kInvalidArgument, "metrics: ", n, " labels need ", n * num_classes,
         " probabilities for ", num_classes, " classes, got ", probs.size());
  }
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      Fail(ErrorCode::kInvalidArgument, "metrics: label ", labels[i], " of sample ", i,
           " is outside [0, ", num_classes, ")");
    }
  }
  for (size_t i = 0; i < probs.size(); ++i) {
    if (!std::isfinite(probs[i])) {
      Fail(ErrorCode::kInvalidArgument, "metrics: probability of sample ", i / num_classes,
           ", class ", i % num_classes, " is not finite (", probs[i], ")");
    }
  }
  return n;
}

std::vector<int> Argmax(const std::vector<float>& probs, size_t n, int k) {
  std::vector<int> predictions(n);
  for (size_t i = 0; i < n; ++i) {
    const float* row = probs.data() + i * k;
    int best = 0;
    for (int c = 1; c < k; ++c) {
      if (row[c] > row[best]) best = c;
    }
    predictions[i] = best;
  }
  return predictions;
}

double AccuracyOf(const std::vector<int>& labels, const std::vector<int>& predictions) {
  if (labels.empty()) return kNaN;
  size_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += labels[i] == predictions[i];
  return static_cast<double>(correct) / labels.size();
}

double MacroF1Of(const std::vector<int>& labels, const std::vector<int>& predictions, int k) {
  if (labels.empty()) return kNaN;
  std::vector<int64_t> tp(k, 0), fp(k, 0), fn(k, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == predictions[i]) {
      ++tp[labels[i]];
    } else {
      ++fn[labels[i]];
      ++fp[predictions[i]];
    }
  }
  double sum = 0;
  int classes = 0;
  for (int c = 0; c < k; ++c) {
    const int64_t denominator = 2 * tp[c] + fp[c] + fn[c];
    if (denominator == 0) continue;  // neither true nor predicted: left out
    sum += 2.0 * tp[c] / denominator;
    ++classes;
  }
  return sum / classes;  // classes >= 1 since N > 0
}

// One-vs-rest AUC of column `column` of the [N, k] scores for the class `positive_class`.
double ColumnAuc(const std::vector<int>& labels, const std::vector<float>& probs, int k, int column,
                 int positive_class) {
  std::vector<bool> positive(labels.size());
  std::vector<float> scores(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    positive[i] = labels[i] == positive_class;
    scores[i] = probs[i * k + column];
  }
  return BinaryAuc(positive, scores);
}

double RocAucChecked(const std::vector<int>& labels, const std::vector<float>& probs, int k) {
  if (k < 2) return kNaN;
  if (k == 2) return ColumnAuc(labels, probs, k, 1, 1);
  double sum = 0;
  int classes = 0;
  for (int c = 0; c < k; ++c) {
    const double auc = ColumnAuc(labels, probs, k, c, c);
    if (std::isnan(auc)) continue;  // no positives or no negatives for this class
    sum += auc;
    ++classes;
  }
  return classes == 0 ? kNaN : sum / classes;
}

ClassificationMetrics MetricsChecked(const std::vector<int>& labels,
                                     const std::vector<float>& probs, int k) {
  const std::vector<int> predictions = Argmax(probs, labels.size(), k);
  ClassificationMetrics m;
  m.count = static_cast<int64_t>(labels.size());
  m.accuracy = AccuracyOf(labels, predictions);
  m.macro_f1 = MacroF1Of(labels, predictions, k);
  m.auc = RocAucChecked(labels, probs, k);
  double nll = 0, brier = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* p = &probs[i * k];
    nll -= std::log(std::clamp(static_cast<double>(p[labels[i]]), 1e-15, 1.0));
    for (int c = k == 2 ? 1 : 0; c < k; ++c) {
      const double d = p[c] - (c == labels[i] ? 1.0 : 0.0);
      brier += d * d;
    }
  }
  const double n = static_cast<double>(labels.size());
  m.log_loss = labels.empty() ? kNaN : nll / n;
  m.brier = labels.empty() ? kNaN : brier / n;
  return m;
}

std::string Percent(double value) {
  if (std::isnan(value)) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", value * 100);
  return text;
}

}  // namespace

std::vector<int> PredictArgmax(const std::vector<float>& probs, int num_classes) {
  if (num_classes < 1 || probs.size() % num_classes != 0) {
    Fail(ErrorCode::kInvalidArgument, "metrics: ", probs.size(),
         " probabilities do not form rows of ", num_classes, " classes");
  }
  return Argmax(probs, probs.size() / num_classes, num_classes);
}

double Accuracy(const std::vector<int>& labels, const std::vector<float>& probs, int num_classes) {
  const size_t n = CheckInputs(labels, probs, num_classes);
  return AccuracyOf(labels, Argmax(probs, n, num_classes));
}

double MacroF1(const std::vector<int>& labels, const std::vector<float>& probs, int num_classes) {
  const size_t n = CheckInputs(labels, probs, num_classes);
  return MacroF1Of(labels, Argmax(probs, n, num_classes), num_classes);
}

double RocAuc(const std::vector<int>& labels, const std::vector<float>& probs, int num_classes) {
  CheckInputs(labels, probs, num_classes);
  return RocAucChecked(labels, probs, num_classes);
}

double BinaryAuc(const std::vector<bool>& positive, const std::vector<float>& scores) {
  if (positive.size() != scores.size()) {
    Fail(ErrorCode::kInvalidArgument, "BinaryAuc: ", positive.size(), " labels but ", scores.size(),
         " scores");
  }
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(scores[i])) {
      Fail(ErrorCode::kInvalidArgument, "BinaryAuc: score ", i, " is not finite");
    }
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Twice the Mann-Whitney U: each (positive, negative) pair with the positive scored
  // higher counts 2, a tie counts 1. Exact in 64-bit integers.
  uint64_t twice_u = 0, negatives_below = 0, positives = 0;
  for (size_t begin = 0; begin < n;) {
    size_t end = begin;
    uint64_t pos = 0, neg = 0;
    while (end < n && scores[order[end]] == scores[order[begin]]) {
      positive[order[end]] ? ++pos : ++neg;
      ++end;
    }
    twice_u += pos * (2 * negatives_below + neg);
    negatives_below += neg;
    positives += pos;
    begin = end;
  }
  const uint64_t negatives = negatives_below;
  if (positives == 0 || negatives == 0) return kNaN;
  return static_cast<double>(twice_u) / (2.0 * positives * negatives);
}

ClassificationMetrics ComputeMetrics(const std::vector<int>& labels,
                                     const std::vector<float>& probs, int num_classes) {
  CheckInputs(labels, probs, num_classes);
  return MetricsChecked(labels, probs, num_classes);
}

GroupedMetrics ComputeGroupedMetrics(const std::vector<int>& labels,
                                     const std::vector<float>& probs, int num_classes,
                                     const std::vector<int>& group_ids, int num_groups) {
  const size_t n = CheckInputs(labels, probs, num_classes);
  if (num_groups < 0) Fail(ErrorCode::kInvalidArgument, "metrics: num_groups ", num_groups);
  if (group_ids.size() != n) {
    Fail(ErrorCode::kInvalidArgument, "metrics: ", n, " labels but ", group_ids.size(),
         " group ids");
  }
  std::vector<std::vector<int>> group_labels(num_groups);
  std::vector<std::vector<float>> group_probs(num_groups);
  for (size_t i = 0; i < n; ++i) {
    const int g = group_ids[i];
    if (g < 0 || g >= num_groups) {
      Fail(ErrorCode::kInvalidArgument, "metrics: group id ", g, " of sample ", i,
           " is outside [0, ", num_groups, ")");
    }
    group_labels[g].push_back(labels[i]);
    group_probs[g].insert(group_probs[g].end(), probs.begin() + i * num_classes,
                          probs.begin() + (i + 1) * num_classes);
  }
  GroupedMetrics result;
  for (int g = 0; g < num_groups; ++g) {
    result.groups.push_back(MetricsChecked(group_labels[g], group_probs[g], num_classes));
  }
  result.overall = MetricsChecked(labels, probs, num_classes);
  return result;
}

MeanAndStd MeanStd(const std::vector<double>& values, int ddof) {
  if (values.empty()) return {kNaN, kNaN};
  if (ddof < 0) Fail(ErrorCode::kInvalidArgument, "MeanStd: ddof ", ddof);
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  if (values.size() == 1) return {mean, 0.0};
  if (values.size() <= static_cast<size_t>(ddof)) return {mean, kNaN};
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / (values.size() - ddof))};
}

std::string FormatMeanStd(const MeanAndStd& value, double scale, int precision) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f +- %.*f", precision, value.mean * scale, precision,
                value.std * scale);
  return text;
}

std::string FormatGroupTable(const GroupedMetrics& metrics,
                             const std::vector<std::string>& group_names) {
  if (group_names.size() != metrics.groups.size()) {
    Fail(ErrorCode::kInvalidArgument, "FormatGroupTable: ", group_names.size(), " names for ",
         metrics.groups.size(), " groups");
  }
  size_t name_width = std::string("overall").size();
  for (const std::string& name : group_names) name_width = std::max(name_width, name.size());
  std::string table;
  char line[512];
  auto row = [&](const std::string& name, const std::string& n, const std::string& acc,
                 const std::string& f1, const std::string& auc) {
    std::snprintf(line, sizeof(line), "%-*s %8s %7s %7s %7s\n", static_cast<int>(name_width),
                  name.c_str(), n.c_str(), acc.c_str(), f1.c_str(), auc.c_str());
    table += line;
  };
  auto metrics_row = [&](const std::string& name, const ClassificationMetrics& m) {
    row(name, std::to_string(m.count), Percent(m.accuracy), Percent(m.macro_f1), Percent(m.auc));
  };
  row("group", "n", "ACC", "F1", "AUC");
  for (size_t g = 0; g < group_names.size(); ++g) {
    if (metrics.groups[g].count > 0)
      metrics_row(group_names[g], metrics.groups[g]);  // no empty rows
  }
  metrics_row("overall", metrics.overall);
  return table;
}

}  // namespace flexmoe
