// Layout-A modality tables read row by row (modality_rows.h).
#include "data_loader/modality_rows.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cluster/base/error.h"
#include "cluster/base/file_handles.h"
#include "data_loader/csv_reader.h"
#include "data_loader/row_source.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

std::string TrimText(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// A modality CSV ("id,feature,..."), parsed once into an unlinked temporary file of doubles.
class SpilledCsv : public ArrayMatrix {
 public:
  SpilledCsv(const std::string& path, const config::DataConfig& data) : file_(std::tmpfile()) {
    path_ = path;
    if (file_ == nullptr) {
      Fail(ErrorCode::kInternal, "a temporary file for ", path, ": ", std::strerror(errno));
    }
    CsvReader csv(path);
    std::vector<std::string_view> fields;
    if (!csv.Next(&fields)) {
      Fail(ErrorCode::kInvalidArgument, path, ": empty file, expected a header row");
    }
    std::vector<std::string> header;
    for (auto f : fields) header.push_back(TrimText(f));
    if (header.size() < 2) {
      Fail(ErrorCode::kInvalidArgument, path, ":1: expected an id column and at least one feature");
    }
    names_.assign(header.begin() + 1, header.end());
    std::vector<double> row(names_.size());
    while (csv.Next(&fields)) {
      if (fields.size() == 1 && TrimText(fields[0]).empty()) continue;
      if (fields.size() != header.size()) {
        Fail(ErrorCode::kInvalidArgument, csv.Where(), ": ragged row: ", fields.size(),
             " fields, the header has ", header.size());
      }
      ids_.push_back(TrimText(fields[0]));
      wheres_.push_back(csv.line());
      for (size_t j = 1; j < fields.size(); ++j) {
        double value = std::numeric_limits<double>::quiet_NaN();
        if (!IsMissing(fields[j], data) && !ParseNumber(fields[j], &value)) {
          Fail(ErrorCode::kInvalidArgument, csv.Where(), ": column '", header[j], "': '",
               std::string(fields[j]), "' is not a number");
        }
        row[j - 1] = value;
      }
      if (std::fwrite(row.data(), sizeof(double), row.size(), file_.get()) != row.size()) {
        Fail(ErrorCode::kInternal, "writing the temporary copy of ", path, ": ",
             std::strerror(errno));
      }
    }
    if (std::fflush(file_.get()) != 0) {
      Fail(ErrorCode::kInternal, "writing the temporary copy of ", path, ": ",
           std::strerror(errno));
    }
  }
  void ReadRow(size_t r, double* out) override {
    const size_t bytes = cols() * sizeof(double);
    if (::pread(fileno(file_.get()), out, bytes, static_cast<off_t>(r * bytes)) !=
        static_cast<ssize_t>(bytes)) {
      Fail(ErrorCode::kInternal, "reading the temporary copy of ", path_, ": short read");
    }
  }
  // "FILE:LINE" of row r.
  std::string Where(size_t r) const { return path_ + ":" + std::to_string(wheres_[r]); }

 private:
  UniqueFile file_;  // closed (and so removed) however the constructor ends
  std::vector<int64_t> wheres_;
};

}  // namespace

ModalityRows::ModalityRows(const config::DataConfig& data, int m,
                           const std::unordered_set<std::string>& labelled,
                           const std::string& labels_path) {
  const config::Modality& modality = data.modalities(m);
  const std::string path = (std::filesystem::path(data.input()) / modality.file()).string();
  std::function<std::string(size_t)> where;
  switch (ArrayFormatOf(modality.file())) {
    case ArrayFormat::kNpy: {
      std::string ids = modality.ids_file();
      if (ids.empty()) ids = modality.file().substr(0, modality.file().size() - 4) + ".ids.txt";
      const std::string ids_path = (std::filesystem::path(data.input()) / ids).string();
      matrix_ = OpenNpyMatrix(path, ids_path, modality.name());
      where = [ids_path](size_t r) { return ids_path + ": id " + std::to_string(r + 1); };
      break;
    }
    case ArrayFormat::kHdf5:
      matrix_ = OpenHdf5Matrix(path, modality.hdf5_matrix(), modality.hdf5_ids(), modality.name());
      where = [path](size_t r) { return path + ": row " + std::to_string(r); };
      break;
    case ArrayFormat::kCsv: {
      auto csv = std::make_unique<SpilledCsv>(path, data);
      const SpilledCsv* table = csv.get();
      where = [table](size_t r) { return table->Where(r); };
      matrix_ = std::move(csv);
      break;
    }
  }
  std::error_code ec;
  file_bytes_ = std::filesystem::file_size(path, ec);
  const std::vector<std::string>& ids = matrix_->ids();
  for (size_t r = 0; r < ids.size(); ++r) {
    if (ids[r].empty()) Fail(ErrorCode::kInvalidArgument, where(r), ": empty id");
    if (!labelled.count(ids[r])) {
      Fail(ErrorCode::kInvalidArgument, where(r), ": id '", ids[r], "' is not in ", labels_path);
    }
    if (!row_of_.emplace(ids[r], r).second) {
      Fail(ErrorCode::kInvalidArgument, where(r), ": duplicate id '", ids[r], "'");
    }
  }
}

bool ModalityRows::Read(const std::string& id, double* out) {
  auto it = row_of_.find(id);
  if (it == row_of_.end()) return false;
  matrix_->ReadRow(it->second, out);
  return true;
}

}  // namespace flexmoe
