// The three preparation passes (prepare.h): index and splits, statistics, shards.
#include "data_loader/prepare.h"

#include <google/protobuf/text_format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "cluster/base/atomic_file.h"
#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"
#include "data_loader/array_files.h"
#include "data_loader/combinations.h"
#include "data_loader/feature_stats.h"
#include "data_loader/folds.h"
#include "data_loader/row_source.h"
#include "data_loader/shard.h"
#include "data_loader/splits.h"
#include "proto/config_compare.h"

namespace flexmoe {
namespace {

const char kDroppedNoModality[] = "no modality observed";
const char kDroppedNoSplit[] = "not in any split";

void AddDropped(data::Summary* summary, const std::string& reason, uint64_t count) {
  if (count == 0) return;
  auto* entry = summary->add_dropped();
  entry->set_name(reason);
  entry->set_count(count);
}

// A CNN3D modality's volume_mask: the positions its features fill, one per feature.
void AddVolumeVoxels(const config::DataConfig& data, int m, data::ModalityMeta* modality) {
  const config::Modality& config = data.modalities(m);
  if (config.volume_mask().empty()) return;
  const std::string path = (std::filesystem::path(data.input()) / config.volume_mask()).string();
  const std::vector<int64_t> voxels = ReadVolumeMask(
      path, std::vector<int64_t>(config.volume_shape().begin(), config.volume_shape().end()));
  if (static_cast<int>(voxels.size()) != modality->feature_names_size()) {
    Fail(ErrorCode::kInvalidArgument, path, ": ", voxels.size(), " voxels, but modality '",
         config.name(), "' has ", modality->feature_names_size(),
         " features (config field data.modalities[", m, "].volume_mask)");
  }
  modality->mutable_volume_voxels()->Add(voxels.begin(), voxels.end());
}

}  // namespace

int32_t ParseLabel(const RawRow& row, const config::DataConfig& data) {
  if (data.class_names_size() > 0) {
    for (int c = 0; c < data.class_names_size(); ++c) {
      if (row.label == data.class_names(c)) return c;
    }
    std::string names;
    for (const auto& n : data.class_names()) names += (names.empty() ? "" : ", ") + n;
    Fail(ErrorCode::kInvalidArgument, row.where, ": label '", row.label,
         "' is not one of the classes (", names, ")");
  }
  char* end = nullptr;
  long value = std::strtol(row.label.c_str(), &end, 10);
  if (row.label.empty() || *end != '\0' || value < 0 || value >= data.num_classes()) {
    // Accept "1.0" style integers too.
    double d;
    std::istringstream in(row.label);
    if (in >> d && in.eof() && d == std::floor(d) && d >= 0 && d < data.num_classes()) {
      return static_cast<int32_t>(d);
    }
    Fail(ErrorCode::kInvalidArgument, row.where, ": label '", row.label, "' is not a class in [0, ",
         data.num_classes(), ")");
  }
  return static_cast<int32_t>(value);
}

namespace {

// Samples per split, combination and class; combination names.
void FillSummary(const data::DatasetIndex& kept, const config::DataConfig& data,
                 const Combinations& combinations, uint64_t rows_read, data::Summary* summary) {
  summary->set_rows_read(rows_read);
  summary->set_samples(kept.id_size());
  std::vector<std::string> modality_names;
  for (const auto& m : data.modalities()) modality_names.push_back(m.name());
  for (int c = 0; c < combinations.size(); ++c) {
    summary->add_combination_names(combinations.Name(c, modality_names));
  }
  for (uint32_t s = 0; s < kNumSplits; ++s) {
    auto* per_split = summary->add_splits();
    per_split->set_split(SplitName(s));
    per_split->mutable_per_combination()->Resize(combinations.size(), 0);
    per_split->mutable_per_class()->Resize(data.num_classes(), 0);
  }
  RecountSplits(kept, summary);
}

// summary.json: the summary, and what a tool outside flexmoe needs to read the same samples
// from the source (bench/baselines.py): its layout, columns and every modality's features
// in order (`feature_names`: the input's, without indicators).
std::string SummaryJson(const data::DatasetMeta& meta, const config::DataConfig& data,
                        const std::vector<std::vector<std::string>>& feature_names) {
  const data::Summary& summary = meta.summary();
  nlohmann::json json;
  json["source"] = data.input();
  json["rows_read"] = summary.rows_read();
  json["samples"] = summary.samples();
  for (const auto& s : summary.splits()) {
    nlohmann::json split_json;
    split_json["samples"] = s.samples();
    for (int c = 0; c < summary.combination_names_size(); ++c) {
      if (s.per_combination(c) > 0)
        split_json["per_combination"][summary.combination_names(c)] = s.per_combination(c);
    }
    for (int k = 0; k < data.num_classes(); ++k)
      split_json["per_class"][meta.class_names(k)] = s.per_class(k);
    json["splits"][s.split()] = split_json;
  }
  json["dropped"] = nlohmann::json::object();
  for (const auto& d : summary.dropped()) json["dropped"][d.name()] = d.count();
  json["layout"] = config::DataConfig::Layout_Name(data.layout());
  json["id_column"] = data.id_column();
  json["label_column"] = data.label_column();
  json["missing_values"] =
      std::vector<std::string>(data.missing_values().begin(), data.missing_values().end());
  json["class_names"] =
      std::vector<std::string>(meta.class_names().begin(), meta.class_names().end());
  json["modalities"] = nlohmann::json::array();
  for (int m = 0; m < data.modalities_size(); ++m) {
    json["modalities"].push_back({{"name", data.modalities(m).name()},
                                  {"file", data.modalities(m).file()},
                                  {"features", feature_names[m]}});
  }
  return json.dump(2) + "\n";
}

// The split of every sample, in the splits-file format (a later prepare can take it).

// Pass 1's result: the rows' ids, labels and combinations, in input order.
struct IndexPass {
  data::DatasetIndex index;
  std::unordered_map<std::string, uint32_t> position_of;  // id -> position in `index`
  std::vector<int32_t> labels;
  uint64_t rows_read = 0, dropped_empty = 0;
  std::vector<std::string> dropped_ids;  // known to a splits file, but without any modality
};

// The samples that have a split; their positions are the final sample numbers.
struct KeptSamples {
  data::DatasetIndex kept;
  std::vector<int64_t> final_of;  // position in IndexPass::index -> sample number, or -1
  uint64_t dropped_no_split = 0;

  // The sample number of `row`, or -1 (no modality, or in no split).
  int64_t Of(const RawRow& row, const IndexPass& pass) const {
    return row.mask == 0 ? -1 : final_of[pass.position_of.at(row.id)];
  }
};

// Pass 1: ids, labels, combinations; duplicate ids; rows without any modality.
IndexPass ReadIndex(RowSource& source, const config::DataConfig& data,
                    const Combinations& combinations) {
  IndexPass pass;
  RawRow row;
  while (source.NextWithoutValues(&row)) {
    ++pass.rows_read;
    int32_t label = ParseLabel(row, data);
    if (row.mask == 0) {
      ++pass.dropped_empty;
      pass.dropped_ids.push_back(row.id);
      continue;
    }
    auto [it, fresh] = pass.position_of.emplace(row.id, pass.index.id_size());
    if (!fresh) Fail(ErrorCode::kInvalidArgument, row.where, ": duplicate id '", row.id, "'");
    pass.index.add_id(row.id);
    pass.index.add_label(label);
    pass.index.add_combination(combinations.Index(row.mask));
    pass.labels.push_back(label);
  }
  return pass;
}

// Splits: a file when there is one, else the seeded stratified split. Samples in no split
// are dropped.
KeptSamples AssignSplits(IndexPass& pass, const RowSource& source, const config::DataConfig& data) {
  const data::DatasetIndex& index = pass.index;
  std::string splits_path = data.splits_file();
  if (splits_path.empty() && std::filesystem::exists(source.DefaultSplitsFile())) {
    splits_path = source.DefaultSplitsFile();
  }
  std::vector<uint32_t> split(index.id_size(), kNoSplit);
  if (!splits_path.empty()) {
    std::unordered_map<std::string, uint32_t> known = pass.position_of;
    for (const auto& id : pass.dropped_ids) known.emplace(id, kNoSplit);
    auto split_of = ReadSplitsFile(splits_path, known);
    for (int i = 0; i < index.id_size(); ++i) {
      auto it = split_of.find(index.id(i));
      if (it != split_of.end()) split[i] = it->second;
    }
  } else {
    split = StratifiedSplit(pass.labels, data.num_classes(), data.split());
  }
  KeptSamples out;
  out.final_of.assign(index.id_size(), -1);
  for (int i = 0; i < index.id_size(); ++i) {
    if (split[i] == kNoSplit) {
      ++out.dropped_no_split;
      continue;
    }
    out.final_of[i] = out.kept.id_size();
    out.kept.add_id(index.id(i));
    out.kept.add_label(index.label(i));
    out.kept.add_combination(index.combination(i));
    out.kept.add_split(split[i]);
  }
  pass.index.Clear();
  if (out.kept.id_size() == 0) {
    Fail(ErrorCode::kInvalidArgument, data.input(), ": no usable samples (", pass.rows_read,
         " rows read, ", pass.dropped_empty, " without any modality, ", out.dropped_no_split,
         " in no split)");
  }
  return out;
}

// Pass 2: statistics of observed values over the training split, fitted into the metadata.
data::DatasetMeta FitStatistics(RowSource& source, const config::DataConfig& data,
                                const IndexPass& pass, const KeptSamples& samples) {
  const int num_modalities = data.modalities_size();
  std::vector<std::vector<FeatureAccumulator>> stats(num_modalities);
  // PIECEWISE_LINEAR modalities: a bounded sample of each feature's values, for its bins.
  std::vector<std::vector<QuantileSample>> samples_of(num_modalities);
  for (int m = 0; m < num_modalities; ++m) {
    const size_t features = source.feature_names()[m].size();
    stats[m].resize(features);
    if (data.modalities(m).encoder() != config::PIECEWISE_LINEAR) continue;
    for (size_t j = 0; j < features; ++j) samples_of[m].emplace_back(j);
  }
  std::vector<uint64_t> observed(num_modalities, 0);  // training rows with the modality
  const auto& offsets = source.offsets();
  RawRow row;
  source.Rewind();
  while (source.Next(&row)) {
    const int64_t n = samples.Of(row, pass);
    if (n < 0 || samples.kept.split(n) != 0) continue;
    for (int m = 0; m < num_modalities; ++m) {
      if (!(row.mask & (1u << m))) continue;
      ++observed[m];
      for (size_t j = 0; j < stats[m].size(); ++j) {
        double v = row.values[offsets[m] + j];
        if (std::isnan(v)) continue;
        stats[m][j].Add(v);
        if (!samples_of[m].empty()) samples_of[m][j].Add(v);
      }
    }
  }
  data::DatasetMeta meta;
  meta.set_format_version(kDatasetFormatVersion);
  meta.set_source(data.input());
  *meta.mutable_data() = PreparedDataSection(data);
  meta.set_num_classes(data.num_classes());
  for (int c = 0; c < data.num_classes(); ++c) {
    meta.add_class_names(data.class_names_size() > 0 ? data.class_names(c) : std::to_string(c));
  }
  for (int m = 0; m < num_modalities; ++m) {
    auto* modality = meta.add_modalities();
    modality->set_name(data.modalities(m).name());
    for (const auto& name : source.feature_names()[m]) modality->add_feature_names(name);
    FitModality(data.modalities(m), stats[m], modality);
    if (data.missing_indicators()) AddMissingIndicators(stats[m], observed[m], modality);
    if (!samples_of[m].empty()) AddBinEdges(samples_of[m], data.quantile_bins(), modality);
    AddVolumeVoxels(data, m, modality);
  }
  return meta;
}

// One shard record: the row's modalities transformed as the metadata says.
void FillRecord(const RawRow& row, int64_t n, const KeptSamples& samples,
                const data::DatasetMeta& meta, const std::vector<size_t>& offsets,
                data::SampleRecord* record, std::vector<float>* packed) {
  record->Clear();
  record->set_id(row.id);
  record->set_label(samples.kept.label(n));
  record->set_combination(samples.kept.combination(n));
  record->set_split(samples.kept.split(n));
  for (int m = 0; m < meta.modalities_size(); ++m) {
    std::string* bytes = record->add_features();
    if (!(row.mask & (1u << m))) continue;
    packed->resize(meta.modalities(m).feature_names_size());
    PreprocessModality(meta.modalities(m), &row.values[offsets[m]], packed->data());
    bytes->assign(reinterpret_cast<const char*>(packed->data()), packed->size() * sizeof(float));
  }
}

// Pass 3: transformed features into shards, in input order; each sample's shard and offset
// into the index. Returns the number of shards.
uint32_t WriteShards(RowSource& source, const config::DataConfig& data, const IndexPass& pass,
                     KeptSamples* samples, data::DatasetMeta* meta, AtomicDirectory& out) {
  data::DatasetIndex& kept = samples->kept;
  std::unique_ptr<ShardWriter> writer;
  uint32_t shard = 0;
  int in_shard = 0;
  kept.mutable_shard()->Resize(kept.id_size(), 0);
  kept.mutable_offset()->Resize(kept.id_size(), 0);
  data::SampleRecord record;
  std::vector<float> packed;
  RawRow row;
  source.Rewind();
  while (source.Next(&row)) {
    const int64_t n = samples->Of(row, pass);
    if (n < 0) continue;
    if (!writer || in_shard == data.records_per_shard()) {
      if (writer) {
        writer->Commit();
        ++shard;
      }
      meta->add_shard_files(ShardFileName(shard));
      writer = std::make_unique<ShardWriter>(out.StagingPath(ShardFileName(shard)));
      in_shard = 0;
    }
    FillRecord(row, n, *samples, *meta, source.offsets(), &record, &packed);
    kept.set_shard(n, shard);
    kept.set_offset(n, writer->Append(record));
    ++in_shard;
  }
  if (writer) writer->Commit();
  return shard + 1;
}

// The index, metadata (with the summary), summary.json and splits.json, staged in `out`.
void WriteOutputs(const config::DataConfig& data, const RowSource& source, const IndexPass& pass,
                  const KeptSamples& samples, data::DatasetMeta* meta, AtomicDirectory& out) {
  const data::DatasetIndex& kept = samples.kept;
  std::string index_bytes = kept.SerializeAsString();
  WriteFileAtomically(out.StagingPath(kIndexFile), index_bytes);
  meta->set_index_crc32c(Crc32c(index_bytes.data(), index_bytes.size()));
  meta->set_num_samples(kept.id_size());

  data::Summary* summary = meta->mutable_summary();
  FillSummary(kept, data, Combinations(data.modalities_size()), pass.rows_read, summary);
  AddDropped(summary, kDroppedNoModality, pass.dropped_empty);
  AddDropped(summary, kDroppedNoSplit, samples.dropped_no_split);

  std::string meta_text;
  google::protobuf::TextFormat::PrintToString(*meta, &meta_text);
  WriteFileAtomically(out.StagingPath(kMetaFile), meta_text);
  WriteFileAtomically(out.StagingPath(kSummaryFile),
                      SummaryJson(*meta, data, source.feature_names()));
  WriteFileAtomically(
      out.StagingPath(kSplitsFile),
      SplitsJson(
          kept.id_size(), [&](size_t i) -> const std::string& { return kept.id(i); },
          [&](size_t i) { return kept.split(i); }));
}

}  // namespace

PrepareResult PrepareDataset(const config::Config& config, const std::string& out_dir,
                             std::ostream* progress) {
  auto start = std::chrono::steady_clock::now();
  const config::DataConfig& data = config.data();
  RowSourceOptions source_options;
  source_options.spill = true;  // a wide CSV is parsed once, by pass 1
  std::unique_ptr<RowSource> source = MakeRowSource(data, source_options);

  IndexPass pass = ReadIndex(*source, data, Combinations(data.modalities_size()));
  const uint64_t input_bytes = source->bytes_read();
  if (progress) {
    *progress << "pass 1: " << pass.rows_read << " rows, " << pass.index.id_size() << " samples\n";
  }
  KeptSamples samples = AssignSplits(pass, *source, data);

  data::DatasetMeta meta = FitStatistics(*source, data, pass, samples);
  if (progress) *progress << "pass 2: statistics fitted on the training split\n";

  AtomicDirectory out(out_dir);
  const uint32_t shards = WriteShards(*source, data, pass, &samples, &meta, out);
  if (progress) {
    *progress << "pass 3: " << samples.kept.id_size() << " records in " << shards << " shards\n";
  }
  WriteOutputs(data, *source, pass, samples, &meta, out);
  out.Commit();

  PrepareResult result;
  result.meta = std::move(meta);
  result.input_bytes = input_bytes;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::string FormatSummary(const data::DatasetMeta& meta) {
  const data::Summary& s = meta.summary();
  std::ostringstream out;
  out << "prepared " << s.samples() << " samples from " << meta.source() << " (" << s.rows_read()
      << " rows read)\n\n";
  out << std::left << std::setw(34) << "combination";
  for (const auto& split : s.splits()) out << std::right << std::setw(12) << split.split();
  out << std::right << std::setw(10) << "total"
      << "\n";
  for (int c = 0; c < s.combination_names_size(); ++c) {
    uint64_t total = 0;
    for (const auto& split : s.splits()) total += split.per_combination(c);
    if (total == 0) continue;
    std::string label = std::to_string(c) + " " + s.combination_names(c);
    out << std::left << std::setw(34) << label;
    for (const auto& split : s.splits())
      out << std::right << std::setw(12) << split.per_combination(c);
    out << std::right << std::setw(10) << total << "\n";
  }
  for (int k = 0; k < meta.num_classes(); ++k) {
    out << std::left << std::setw(34) << ("class " + meta.class_names(k));
    uint64_t total = 0;
    for (const auto& split : s.splits()) {
      out << std::right << std::setw(12) << split.per_class(k);
      total += split.per_class(k);
    }
    out << std::right << std::setw(10) << total << "\n";
  }
  out << std::left << std::setw(34) << "samples";
  for (const auto& split : s.splits()) out << std::right << std::setw(12) << split.samples();
  out << std::right << std::setw(10) << s.samples() << "\n\n";
  if (s.dropped_size() == 0) out << "dropped rows: none\n";
  for (const auto& d : s.dropped())
    out << "dropped rows: " << d.count() << " (" << d.name() << ")\n";
  return out.str();
}

}  // namespace flexmoe
