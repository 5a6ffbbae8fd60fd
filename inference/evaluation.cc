// Evaluation of an export with calibration and attribution (evaluation.h).
#include "inference/evaluation.h"

#include <ATen/ATen.h>

#include <cmath>
#include <iomanip>
#include <sstream>

#include "cluster/base/error.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/prepare.h"
#include "data_loader/prepared_check.h"
#include "data_loader/shard.h"
#include "data_loader/shard_samples.h"
#include "inference/prediction_input.h"
#include "inference/scorer.h"
#include "trainer/train/metrics.h"

namespace flexmoe {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

nlohmann::json MetricsJson(const ClassificationMetrics& m) {
  return {{"count", m.count},  {"accuracy", Num(m.accuracy)}, {"macro_f1", Num(m.macro_f1)},
          {"auc", Num(m.auc)}, {"log_loss", Num(m.log_loss)}, {"brier", Num(m.brier)}};
}

nlohmann::json BinsJson(const Reliability& r) {
  nlohmann::json bins = nlohmann::json::array();
  for (const ReliabilityBin& b : r.bins) {
    bins.push_back({{"lower", b.lower},
                    {"upper", b.upper},
                    {"count", b.count},
                    {"confidence", b.count > 0 ? Num(b.confidence) : nlohmann::json()},
                    {"accuracy", b.count > 0 ? Num(b.accuracy) : nlohmann::json()}});
  }
  return bins;
}

// Every input row with a label into one batch (rows without any modality counted).
DecodedBatch ReadLabelledInput(const LoadedModel& model, const std::string& path,
                               int64_t* without_modality) {
  PredictionInput input(model, path, /*labels_required=*/true);
  DecodedBatch all;
  all.features.resize(model.num_modalities());
  InputBatch rows;
  while (input.Next(4096, &rows)) {
    const DecodedBatch& b = rows.batch;
    for (int m = 0; m < model.num_modalities(); ++m) {
      all.features[m].insert(all.features[m].end(), b.features[m].begin(), b.features[m].end());
    }
    all.observed.insert(all.observed.end(), b.observed.begin(), b.observed.end());
    all.combination.insert(all.combination.end(), b.combination.begin(), b.combination.end());
    all.label.insert(all.label.end(), b.label.begin(), b.label.end());
    all.size += b.size;
    *without_modality += static_cast<int64_t>(rows.ids.size()) - b.size;
  }
  return all;
}

void AddAttribution(LoadedModel& model, const Samples& data, const std::vector<uint32_t>& samples,
                    EvalReport* report) {
  const int m_count = model.num_modalities();
  std::vector<std::vector<double>> sum(report->combination_names.size(),
                                       std::vector<double>(m_count, 0));
  report->attribution_count.assign(sum.size(), std::vector<int64_t>(m_count, 0));
  ScoreOptions options;
  options.explain = true;
  for (const auto& batch_samples : Batches(samples, 256)) {
    DecodedBatch batch = data.Gather(batch_samples);
    BatchScores scores = ScoreBatch({&model}, batch, options);
    for (int i = 0; i < batch.size; ++i) {
      for (int m = 0; m < m_count; ++m) {
        const float a = scores.attribution[i * m_count + m];
        if (std::isnan(a)) continue;
        sum[batch.combination[i]][m] += std::abs(a);
        ++report->attribution_count[batch.combination[i]][m];
      }
    }
  }
  report->attribution = sum;
  for (size_t c = 0; c < sum.size(); ++c) {
    for (int m = 0; m < m_count; ++m) {
      const int64_t n = report->attribution_count[c][m];
      report->attribution[c][m] = n > 0 ? sum[c][m] / n : kNaN;
    }
  }
}

// Every k-th of `samples`, k the smallest that leaves at most `most` (0: all).
std::vector<uint32_t> Strided(const std::vector<uint32_t>& samples, int64_t most) {
  const int64_t n = static_cast<int64_t>(samples.size());
  if (most <= 0 || n <= most) return samples;
  const int64_t k = (n + most - 1) / most;
  std::vector<uint32_t> out;
  for (int64_t i = 0; i < n; i += k) out.push_back(samples[i]);
  return out;
}

std::string Percent(double v) {
  if (!std::isfinite(v)) return "-";
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << 100 * v;
  return out.str();
}

}  // namespace

uint32_t SplitIndex(const std::string& name) {
  const uint32_t split = SplitNamed(name);
  if (split != kNoSplit) return split;
  Fail(ErrorCode::kInvalidArgument, "--split: '", name, "' is not test, validation or training");
}

EvalReport EvaluateExport(LoadedModel& model, const EvalOptions& options) {
  EvalReport report;
  report.checkpoint = model.dir;
  report.calibration.temperature = model.info.temperature;
  report.calibration.bias = model.info.calibration_bias;
  report.class_names = model.class_names();
  report.modality_names = model.modality_names();
  report.combination_names = model.combination_names();
  const int k_count = model.num_classes();
  const int c_count = static_cast<int>(report.combination_names.size());
  std::unique_ptr<Samples> data;
  PreparedDataset prepared;
  std::vector<uint32_t> samples;
  if (!options.input.empty()) {
    report.source = options.input;
    DecodedBatch rows = ReadLabelledInput(model, options.input, &report.without_modality);
    data = std::make_unique<DecodedDataset>(rows, model.feature_sizes());
    for (int i = 0; i < rows.size; ++i) samples.push_back(static_cast<uint32_t>(i));
  } else {
    const uint32_t split = SplitIndex(options.split);
    const std::string dir = model.config.data().prepared_dir();
    prepared = OpenPreparedFor(model.config.data(),
                               "flexmoe prepare with the checkpoint's config (flexmoe "
                               "inspect-checkpoint prints it)",
                               PreparedParts::kServing);
    if (model.dataset.has_index_crc32c() &&
        prepared.meta.index_crc32c() != model.dataset.index_crc32c()) {
      Fail(ErrorCode::kInvalidArgument, dir,
           ": not the prepared dataset the model was trained on (index CRC32C ",
           prepared.meta.index_crc32c(), ", the checkpoint's ", model.dataset.index_crc32c(),
           "); pass --input with a labelled file instead");
    }
    report.source = "split " + std::string(SplitName(split)) + " of " + dir;
    // No cache: each pass reads a sample once (the page cache keeps the shards), and cached
    // entries between the passes' large tensors would fragment the heap.
    data = std::make_unique<ShardSamples>(prepared, 0);
    samples = SamplesOfSplit(prepared.index, split);
  }
  at::Tensor class_weights;
  const auto& tc = model.config.training();
  if (tc.class_weights_size() > 0) {
    std::vector<float> cw(tc.class_weights().begin(), tc.class_weights().end());
    class_weights = at::tensor(cw, at::kFloat);
  }
  report.result = Evaluate(*model.model, *data, samples, k_count, c_count, class_weights);
  const EvalResult& r = report.result;
  const std::vector<float> calibrated = Calibrate(r.log_probs, k_count, report.calibration);
  report.calibrated_metrics = ComputeMetrics(r.labels, calibrated, k_count);
  report.reliability = ComputeReliability(r.labels, r.probs, k_count);
  report.calibrated_reliability = ComputeReliability(r.labels, calibrated, k_count);
  report.per_combination = ComputeGroupedReliability(r.labels, r.probs, k_count, r.groups, c_count);
  report.calibrated_per_combination =
      ComputeGroupedReliability(r.labels, calibrated, k_count, r.groups, c_count);
  if (options.explain)
    AddAttribution(model, *data, Strided(samples, options.max_explained), &report);
  return report;
}

std::string FormatEvalReport(const EvalReport& report) {
  const EvalResult& r = report.result;
  std::ostringstream out;
  out << "checkpoint " << report.checkpoint << " on " << report.source << ": " << r.labels.size()
      << " samples";
  if (report.without_modality > 0) {
    out << " (" << report.without_modality << " rows without any modality not scored)";
  }
  out << "\n" << FormatGroupTable(r.metrics, report.combination_names);
  const ClassificationMetrics& o = r.metrics.overall;
  const ClassificationMetrics& c = report.calibrated_metrics;
  out << "\nlog-loss " << std::setprecision(4) << o.log_loss << ", Brier " << o.brier
      << "; calibrated (temperature " << report.calibration.temperature;
  if (!report.calibration.bias.empty()) {
    out << ", biases";
    for (double b : report.calibration.bias) out << " " << b;
  }
  out << "): log-loss " << c.log_loss << ", Brier " << c.brier << "\n";
  out << "calibration (expected calibration error, 15 bins, %): " << Percent(report.reliability.ece)
      << "; calibrated: " << Percent(report.calibrated_reliability.ece) << "\n";
  const bool explained = !report.attribution.empty();
  out << std::left << std::setw(34) << "combination" << std::right << std::setw(8) << "ECE"
      << std::setw(10) << "ECE(T)";
  if (explained) {
    for (const auto& m : report.modality_names) {
      out << std::setw(std::max<int>(12, m.size() + 9)) << ("|attr| " + m);
    }
  }
  out << "\n";
  for (size_t c = 0; c < report.combination_names.size(); ++c) {
    if (r.metrics.groups[c].count == 0) continue;
    out << std::left << std::setw(34) << report.combination_names[c] << std::right << std::setw(8)
        << Percent(report.per_combination[c].ece) << std::setw(10)
        << Percent(report.calibrated_per_combination[c].ece);
    if (explained) {
      for (size_t m = 0; m < report.modality_names.size(); ++m) {
        const int width = std::max<int>(12, report.modality_names[m].size() + 9);
        out << std::setw(width) << Percent(report.attribution[c][m]);
      }
    }
    out << "\n";
  }
  if (explained) {
    out << "(|attr| m: mean absolute change, in points of probability of the class of interest, "
           "when m is replaced by the bank's entry for the combination without it)\n";
  }
  return out.str();
}

nlohmann::json EvalReportJson(const EvalReport& report) {
  const EvalResult& r = report.result;
  nlohmann::json json;
  json["checkpoint"] = report.checkpoint;
  json["source"] = report.source;
  json["samples"] = r.labels.size();
  json["without_modality"] = report.without_modality;
  json["classes"] = report.class_names;
  json["modalities"] = report.modality_names;
  json["loss"] = Num(r.loss);
  json["temperature"] = report.calibration.temperature;
  json["calibration_bias"] = report.calibration.bias;
  json["overall"] = MetricsJson(r.metrics.overall);
  json["overall_calibrated"] = MetricsJson(report.calibrated_metrics);
  json["overall"]["ece"] = Num(report.reliability.ece);
  json["overall"]["ece_calibrated"] = Num(report.calibrated_reliability.ece);
  json["reliability"] = BinsJson(report.reliability);
  json["reliability_calibrated"] = BinsJson(report.calibrated_reliability);
  nlohmann::json per = nlohmann::json::array();
  for (size_t c = 0; c < report.combination_names.size(); ++c) {
    nlohmann::json g = MetricsJson(r.metrics.groups[c]);
    g["index"] = c;
    g["name"] = report.combination_names[c];
    g["ece"] = Num(report.per_combination[c].ece);
    g["ece_calibrated"] = Num(report.calibrated_per_combination[c].ece);
    if (!report.attribution.empty()) {
      for (size_t m = 0; m < report.modality_names.size(); ++m) {
        g["mean_abs_attribution"][report.modality_names[m]] = Num(report.attribution[c][m]);
      }
    }
    per.push_back(g);
  }
  json["per_combination"] = per;
  // Expert activation per sparse layer: rows combinations, columns experts, token counts.
  nlohmann::json layers = nlohmann::json::array();
  const size_t c_count = report.combination_names.size();
  for (const auto& counts : r.routed) {
    const size_t e_count = c_count > 0 ? counts.size() / c_count : 0;
    nlohmann::json rows = nlohmann::json::array();
    for (size_t c = 0; c < c_count; ++c) {
      rows.push_back(
          std::vector<int64_t>(counts.begin() + c * e_count, counts.begin() + (c + 1) * e_count));
    }
    layers.push_back(rows);
  }
  json["expert_tokens"] = layers;
  return json;
}

}  // namespace flexmoe
