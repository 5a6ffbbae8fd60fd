// Batches of CSV rows parsed on several threads (row_batch.h).
#include "data_loader/row_batch.h"

#include <algorithm>
#include <exception>
#include <thread>

namespace flexmoe {

void RowTexts::Clear() {
  arena_.clear();
  ends_.clear();
  lines_.clear();
}

void RowTexts::Add(int64_t line, const std::vector<std::string_view>& fields) {
  for (int c : columns_) {
    if (c >= 0) arena_.append(fields[c].data(), fields[c].size());
    ends_.push_back(arena_.size());
  }
  lines_.push_back(line);
}

std::string_view RowTexts::field(size_t r, size_t k) const {
  const size_t i = r * columns_.size() + k;
  const size_t begin = i == 0 ? 0 : ends_[i - 1];
  return std::string_view(arena_).substr(begin, ends_[i] - begin);
}

void ParseRows(const RowTexts& texts,
               const std::function<void(const RowTexts&, size_t, RawRow*)>& parse, int threads,
               std::vector<RawRow>* rows) {
  const size_t n = texts.rows();
  rows->resize(n);
  const size_t parts = std::max<size_t>(1, std::min<size_t>(threads, n / 64));
  // Each part stops at its first failing row; the earliest failure over the parts wins.
  std::vector<size_t> failed_at(parts, n);
  std::vector<std::exception_ptr> errors(parts);
  auto run = [&](size_t p) {
    const size_t begin = n * p / parts, end = n * (p + 1) / parts;
    for (size_t r = begin; r < end; ++r) {
      try {
        parse(texts, r, &(*rows)[r]);
      } catch (...) {
        failed_at[p] = r;
        errors[p] = std::current_exception();
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t p = 1; p < parts; ++p) pool.emplace_back(run, p);
  run(0);
  for (auto& t : pool) t.join();
  const size_t first = std::min_element(failed_at.begin(), failed_at.end()) - failed_at.begin();
  if (errors[first]) std::rethrow_exception(errors[first]);
}

}  // namespace flexmoe
