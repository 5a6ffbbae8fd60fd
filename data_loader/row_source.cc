// Layout A and layout B row sources (row_source.h).
#include "data_loader/row_source.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <limits>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "cluster/base/error.h"
#include "data_loader/csv_reader.h"
#include "data_loader/modality_rows.h"
#include "data_loader/row_batch.h"
#include "data_loader/shard.h"  // kSplitsFile
#include "data_loader/spilled_rows.h"

namespace flexmoe {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

bool IsBlank(const std::vector<std::string_view>& fields) {
  return fields.size() == 1 && Trim(fields[0]).empty();
}

// Reads a header row; throws when the file is empty.
std::vector<std::string> ReadHeader(CsvReader& csv) {
  std::vector<std::string_view> fields;
  if (!csv.Next(&fields))
    Fail(ErrorCode::kInvalidArgument, csv.path(), ": empty file, expected a header row");
  std::vector<std::string> header;
  for (auto f : fields) header.push_back(Trim(f));
  return header;
}

void CheckWidth(const CsvReader& csv, size_t got, size_t want) {
  if (got != want) {
    Fail(ErrorCode::kInvalidArgument, csv.Where(), ": ragged row: ", got,
         " fields, the header has ", want);
  }
}

double ParseValue(const std::string& where, std::string_view text, const std::string& column,
                  const config::DataConfig& data) {
  if (IsMissing(text, data)) return kNaN;
  double value;
  if (!ParseNumber(text, &value)) {
    Fail(ErrorCode::kInvalidArgument, where, ": column '", column, "': '", std::string(text),
         "' is not a number");
  }
  return value;
}

// Rows of a wide CSV parsed a batch at a time (row_batch.h).
constexpr size_t kBatchRows = 2048;

// Layout B: one wide CSV, modality columns named in the config.
class WideCsvSource : public RowSource {
 public:
  WideCsvSource(const config::DataConfig& data, const RowSourceOptions& options)
      : data_(data), options_(options) {
    Rewind();
  }

  void Rewind() override {
    if (spill_complete_) {  // every row parsed once: read back, not parsed again
      spill_->StartReading(data_.input());
      spill_read_ = true;
      return;
    }
    csv_ = std::make_unique<CsvReader>(data_.input());
    header_ = ReadHeader(*csv_);
    ready_.clear();
    ready_at_ = 0;
    if (options_.spill) spill_ = std::make_unique<SpilledRows>();
    if (!columns_.empty()) return;
    std::unordered_map<std::string, int> position;
    for (size_t i = 0; i < header_.size(); ++i) {
      if (!position.emplace(header_[i], static_cast<int>(i)).second) {
        Fail(ErrorCode::kInvalidArgument, data_.input(), ":1: duplicate column '", header_[i], "'");
      }
    }
    auto find = [&](const std::string& name, const std::string& field) {
      auto it = position.find(name);
      if (it == position.end()) {
        Fail(ErrorCode::kInvalidArgument, data_.input(), ":1: column '", name, "' (config field ",
             field, ") is not in the header");
      }
      return it->second;
    };
    id_column_ = find(data_.id_column(), "data.id_column");
    if (!options_.labels_optional || position.count(data_.label_column())) {
      label_column_ = find(data_.label_column(), "data.label_column");
    }
    std::unordered_set<int> reserved = {id_column_, label_column_};
    for (const auto& name : data_.exclude_columns()) {
      auto it = position.find(name);
      if (it != position.end()) reserved.insert(it->second);
    }
    std::unordered_map<int, std::string> owner;
    std::vector<std::vector<std::string>> names(data_.modalities_size());
    columns_.resize(data_.modalities_size());
    for (int m = 0; m < data_.modalities_size(); ++m) {
      const auto& modality = data_.modalities(m);
      std::string field = "data.modalities[" + std::to_string(m) + "].columns";
      for (const std::string& spec : modality.columns()) {
        std::vector<int> matched;
        if (!spec.empty() && spec.back() == '*') {
          std::string prefix = spec.substr(0, spec.size() - 1);
          for (size_t i = 0; i < header_.size(); ++i) {
            if (header_[i].compare(0, prefix.size(), prefix) == 0)
              matched.push_back(static_cast<int>(i));
          }
          if (matched.empty()) {
            Fail(ErrorCode::kInvalidArgument, data_.input(), ":1: no column starts with '", prefix,
                 "' (config field ", field, ")");
          }
        } else {
          matched.push_back(find(spec, field));
        }
        for (int column : matched) {
          if (reserved.count(column)) {
            if (spec.back() == '*') continue;  // a prefix may sweep over excluded columns
            Fail(ErrorCode::kInvalidArgument, "config field ", field, ": column '", header_[column],
                 "' is the id, the label or excluded");
          }
          auto [it, fresh] = owner.emplace(column, modality.name());
          if (!fresh) {
            Fail(ErrorCode::kInvalidArgument, "config field ", field, ": column '", header_[column],
                 "' already belongs to modality '", it->second, "'");
          }
          columns_[m].push_back(column);
          names[m].push_back(header_[column]);
        }
      }
    }
    // One rule for preparation and prediction: every column is a feature, the id, the
    // label or excluded; a column no modality lists is never dropped silently.
    std::vector<std::string> unknown;
    for (size_t i = 0; i < header_.size(); ++i) {
      if (reserved.count(static_cast<int>(i)) || owner.count(static_cast<int>(i))) continue;
      if (static_cast<int>(i) == label_column_ || header_[i] == data_.label_column()) continue;
      unknown.push_back(header_[i]);
    }
    if (!unknown.empty()) {
      std::string names;
      for (size_t i = 0; i < unknown.size() && i < 8; ++i) {
        names += (i ? ", '" : "'") + unknown[i] + "'";
      }
      if (unknown.size() > 8) names += ", ...";
      Fail(ErrorCode::kInvalidArgument, data_.input(), ":1: ", unknown.size(),
           unknown.size() == 1 ? " column is" : " columns are",
           " in no modality and not excluded (", names,
           "): list them in data.exclude_columns or in a modality's columns (flexmoe init "
           "writes both)");
    }
    SetFeatureNames(std::move(names));
    std::vector<int> texts = {id_column_, label_column_};
    for (const auto& m : columns_) texts.insert(texts.end(), m.begin(), m.end());
    texts_ = std::make_unique<RowTexts>(std::move(texts));
  }

  bool Next(RawRow* row) override {
    if (spill_read_) return spill_->Next(row);
    if (ready_at_ == ready_.size() && !FillBatch()) {
      spill_complete_ = spill_ != nullptr;
      return false;
    }
    if (spill_ != nullptr) spill_->Append(ready_[ready_at_], texts_->line(ready_at_));
    *row = std::move(ready_[ready_at_++]);
    return true;
  }

  uint64_t bytes_read() const override { return csv_->bytes_read(); }

 private:
  // The next batch of rows, parsed (ready_); false at the end of the file. A row that
  // cannot be split stops the batch after the rows before it are parsed, so the error of
  // the first bad row is the one thrown.
  bool FillBatch() {
    texts_->Clear();
    std::exception_ptr stop;
    try {
      while (texts_->rows() < kBatchRows && csv_->Next(&fields_)) {
        if (IsBlank(fields_)) continue;
        CheckWidth(*csv_, fields_.size(), header_.size());
        texts_->Add(csv_->line(), fields_);
      }
    } catch (const Error&) {
      stop = std::current_exception();
    }
    const int threads =
        options_.parse_threads > 0
            ? options_.parse_threads
            : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
    ParseRows(
        *texts_, [this](const RowTexts& t, size_t r, RawRow* row) { ParseRow(t, r, row); }, threads,
        &ready_);
    if (stop) std::rethrow_exception(stop);
    ready_at_ = 0;
    return texts_->rows() > 0;
  }

  // Row r of a batch: id, label, values, mask (any thread).
  void ParseRow(const RowTexts& t, size_t r, RawRow* row) const {
    row->where = data_.input() + ":" + std::to_string(t.line(r));
    row->id = Trim(t.field(r, 0));
    if (row->id.empty()) Fail(ErrorCode::kInvalidArgument, row->where, ": empty id");
    row->label = label_column_ >= 0 ? Trim(t.field(r, 1)) : "";
    row->values.assign(num_values(), kNaN);
    row->mask = 0;
    size_t k = 2;
    for (size_t m = 0; m < columns_.size(); ++m) {
      const size_t base = offsets()[m];
      for (size_t j = 0; j < columns_[m].size(); ++j) {
        const int column = columns_[m][j];
        const double v = ParseValue(row->where, t.field(r, k++), header_[column], data_);
        row->values[base + j] = v;
        if (!std::isnan(v)) row->mask |= 1u << m;
      }
    }
  }

  const config::DataConfig& data_;
  RowSourceOptions options_;
  std::unique_ptr<CsvReader> csv_;
  std::vector<std::string> header_;
  std::vector<std::string_view> fields_;
  int id_column_ = -1;
  int label_column_ = -1;
  std::vector<std::vector<int>> columns_;
  std::unique_ptr<RowTexts> texts_;  // the batch being parsed
  std::vector<RawRow> ready_;        // its rows, parsed
  size_t ready_at_ = 0;              // the next of them to hand out
  std::unique_ptr<SpilledRows> spill_;
  bool spill_complete_ = false;  // a pass read the whole file into spill_
  bool spill_read_ = false;      // rows come from spill_
};

// Layout A: labels.csv gives the samples; each modality's file (CSV, .npy or HDF5) holds the
// subjects that have it. Labels stream; modality rows are read by id (modality_rows.h).
class PerModalitySource : public RowSource {
 public:
  PerModalitySource(const config::DataConfig& data, const RowSourceOptions& options)
      : data_(data), options_(options) {
    std::unordered_set<std::string> labelled;
    {
      CsvReader labels(LabelsPath());
      labels_width_ = ReadLabelsHeader(labels);
      std::vector<std::string_view> fields;
      while (labels.Next(&fields)) {
        if (IsBlank(fields)) continue;
        CheckWidth(labels, fields.size(), labels_width_);
        std::string id = Trim(fields[0]);
        if (id.empty()) Fail(ErrorCode::kInvalidArgument, labels.Where(), ": empty id");
        if (!labelled.insert(id).second) {
          Fail(ErrorCode::kInvalidArgument, labels.Where(), ": duplicate id '", id, "'");
        }
      }
    }
    std::vector<std::vector<std::string>> names;
    for (int m = 0; m < data.modalities_size(); ++m) {
      tables_.push_back(std::make_unique<ModalityRows>(data, m, labelled, LabelsPath()));
      names.push_back(tables_.back()->names());
    }
    SetFeatureNames(std::move(names));
    Rewind();
  }

  void Rewind() override {
    labels_ = std::make_unique<CsvReader>(LabelsPath());
    labels_width_ = ReadLabelsHeader(*labels_);
  }

  bool Next(RawRow* row) override { return NextRow(row, true); }
  bool NextWithoutValues(RawRow* row) override { return NextRow(row, false); }

  // labels.csv's bytes read so far, and every modality file's (each is read once).
  uint64_t bytes_read() const override {
    uint64_t bytes = labels_->bytes_read();
    for (const auto& table : tables_) bytes += table->file_bytes();
    return bytes;
  }

  std::string DefaultSplitsFile() const override {
    return (std::filesystem::path(data_.input()) / kSplitsFile).string();
  }

 private:
  std::string LabelsPath() const {
    return (std::filesystem::path(data_.input()) / "labels.csv").string();
  }

  bool NextRow(RawRow* row, bool values) {
    for (;;) {
      if (!labels_->Next(&fields_)) return false;
      if (!IsBlank(fields_)) break;
    }
    row->where = labels_->Where();
    CheckWidth(*labels_, fields_.size(), labels_width_);
    row->id = Trim(fields_[0]);
    row->label = labels_width_ > 1 ? Trim(fields_[1]) : "";
    row->mask = 0;
    if (values) row->values.assign(num_values(), kNaN);
    for (size_t m = 0; m < tables_.size(); ++m) {
      const bool has = values ? tables_[m]->Read(row->id, row->values.data() + offsets()[m])
                              : tables_[m]->Has(row->id);
      if (has) row->mask |= 1u << m;
    }
    return true;
  }

  // The header's width: 2 ("id,label"), or 1 ("id") where labels are optional.
  size_t ReadLabelsHeader(CsvReader& csv) const {
    std::vector<std::string> header = ReadHeader(csv);
    if (header.size() != 2 && !(options_.labels_optional && header.size() == 1)) {
      Fail(ErrorCode::kInvalidArgument, csv.path(), ":1: expected the header 'id,label'",
           options_.labels_optional ? " or 'id'" : "", ", got ", header.size(), " columns");
    }
    return header.size();
  }

  const config::DataConfig& data_;
  RowSourceOptions options_;
  size_t labels_width_ = 2;
  std::vector<std::unique_ptr<ModalityRows>> tables_;
  std::unique_ptr<CsvReader> labels_;
  std::vector<std::string_view> fields_;
};

}  // namespace

void RowSource::SetFeatureNames(std::vector<std::vector<std::string>> names) {
  offsets_.assign(1, 0);
  for (const auto& modality : names) offsets_.push_back(offsets_.back() + modality.size());
  feature_names_ = std::move(names);
}

bool IsMissing(const std::string_view& text, const config::DataConfig& data) {
  std::string_view t = text;
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  if (t.empty()) return true;
  for (const auto& token : data.missing_values()) {
    if (t == token) return true;
  }
  return false;
}

std::unique_ptr<RowSource> MakeRowSource(const config::DataConfig& data,
                                         const RowSourceOptions& options) {
  if (data.input().empty()) Fail(ErrorCode::kInvalidArgument, "config field data.input: not set");
  if (!std::filesystem::exists(data.input())) {
    Fail(ErrorCode::kNotFound, data.input(),
         ": no such file or directory (config field data.input)");
  }
  switch (data.layout()) {
    case config::DataConfig::WIDE_CSV:
      return std::make_unique<WideCsvSource>(data, options);
    case config::DataConfig::PER_MODALITY_CSV:
      return std::make_unique<PerModalitySource>(data, options);
    default:
      Fail(ErrorCode::kInvalidArgument, "config field data.layout: not set");
  }
}

}  // namespace flexmoe
