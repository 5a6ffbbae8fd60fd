// Rows parsed once and kept for the passes after the first: an unlinked temporary file
// (std::tmpfile, like layout A's spilled modality CSVs) of each row's id, label, line,
// mask and values (doubles, as parsed), written and read sequentially through large
// buffers. Memory holds one row; the file holds the dataset's values (8 bytes a value).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "data_loader/row_source.h"

namespace flexmoe {

class SpilledRows {
 public:
  // kUnavailable when no temporary file can be made.
  SpilledRows();
  void Append(const RawRow& row, int64_t line);
  // The rows appended so far, from the first; rows of `path` for RawRow::where.
  void StartReading(const std::string& path);
  // The next row, or false after the last; kDataLoss when the file was cut short.
  bool Next(RawRow* row);
  int64_t rows() const { return rows_; }

 private:
  struct Close {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  void Write(const void* data, size_t bytes);
  void Read(void* data, size_t bytes);

  std::unique_ptr<FILE, Close> file_;
  std::unique_ptr<char[]> buffer_;
  std::string path_;
  int64_t rows_ = 0, read_ = 0;
};

}  // namespace flexmoe
