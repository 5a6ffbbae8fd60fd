// CSV rows parsed on several threads: the reader (one thread) copies a batch of rows'
// field texts out of its buffer into RowTexts, then ParseRows turns them into RawRows on up
// to `threads` threads, in order. Parsing numbers is most of a wide CSV's cost; splitting
// the lines stays on the reader's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data_loader/row_source.h"

namespace flexmoe {

class RowTexts {
 public:
  // The field texts of a batch of rows, `columns.size()` a row: the fields at `columns` of
  // each added row (-1: an empty text).
  explicit RowTexts(std::vector<int> columns) : columns_(std::move(columns)) {}
  void Clear();
  void Add(int64_t line, const std::vector<std::string_view>& fields);
  size_t rows() const { return lines_.size(); }
  int64_t line(size_t r) const { return lines_[r]; }
  std::string_view field(size_t r, size_t k) const;

 private:
  std::vector<int> columns_;
  std::string arena_;
  std::vector<size_t> ends_;  // where each field ends in arena_, columns_.size() a row
  std::vector<int64_t> lines_;
};

// parse(texts, r, row) for every row r of `texts` into rows[r] (resized), on up to
// `threads` threads. When rows fail, the error of the first of them is thrown: the one a
// parse in order would have thrown.
void ParseRows(const RowTexts& texts,
               const std::function<void(const RowTexts&, size_t, RawRow*)>& parse, int threads,
               std::vector<RawRow>* rows);

}  // namespace flexmoe
