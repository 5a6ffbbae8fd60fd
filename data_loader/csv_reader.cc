// The CSV state machine of csv_reader.h, reading through zlib's gz* interface.
#include "data_loader/csv_reader.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>

#include "cluster/base/error.h"

namespace flexmoe {

CsvReader::CsvReader(std::string path) : path_(std::move(path)), buffer_(1 << 18) {
  file_ = gzopen(path_.c_str(), "rb");
  if (file_ == nullptr) Fail(ErrorCode::kNotFound, path_, ": cannot open: ", std::strerror(errno));
  gzbuffer(file_, 1 << 18);
}

CsvReader::~CsvReader() {
  if (file_ != nullptr) gzclose(file_);
}

bool CsvReader::Fill() {
  if (eof_) return false;
  int n = gzread(file_, buffer_.data(), static_cast<unsigned>(buffer_.size()));
  if (n < 0) {
    int code = 0;
    const char* message = gzerror(file_, &code);
    Fail(ErrorCode::kDataLoss, path_, ":", line_, ": read failed: ", message);
  }
  if (n == 0) {
    eof_ = true;
    return false;
  }
  pos_ = 0;
  end_ = static_cast<size_t>(n);
  bytes_read_ += end_;
  return true;
}

namespace {

// The bytes that end a run of plain field bytes.
inline bool IsSpecial(char c) { return c == ',' || c == '"' || c == '\n' || c == '\r'; }

}  // namespace

inline int CsvReader::Peek() {
  if (pos_ == end_ && !Fill()) return -1;
  return static_cast<unsigned char>(buffer_[pos_]);
}

inline int CsvReader::Get() {
  if (pos_ == end_ && !Fill()) return -1;
  return static_cast<unsigned char>(buffer_[pos_++]);
}

bool CsvReader::Next(std::vector<std::string_view>* fields) {
  fields->clear();
  storage_.clear();
  field_offsets_.clear();
  if (Peek() < 0) return false;
  record_line_ = line_;
  field_offsets_.push_back(0);
  for (;;) {
    // Plain bytes up to the next comma, quote or line end go over in one piece.
    if (pos_ == end_ && !Fill()) {
      field_offsets_.push_back(storage_.size());
      break;
    }
    const char* begin = buffer_.data() + pos_;
    const char* end = buffer_.data() + end_;
    const char* p = begin;
    while (p < end && !IsSpecial(*p)) ++p;
    storage_.append(begin, p);
    pos_ += p - begin;
    if (p == end) continue;
    int c = Get();
    if (c == '"' && storage_.size() == field_offsets_.back()) {
      // Quoted field: read up to the closing quote; "" is a literal quote.
      for (;;) {
        int q = Get();
        if (q < 0) {
          Fail(ErrorCode::kInvalidArgument, path_, ":", record_line_,
               ": unterminated quoted field (the file ends inside quotes)");
        }
        if (q == '\n') ++line_;
        if (q == '"') {
          if (Peek() == '"') {
            Get();
            storage_.push_back('"');
            continue;
          }
          break;
        }
        storage_.push_back(static_cast<char>(q));
      }
      int after = Peek();
      if (after != ',' && after != '\n' && after != '\r' && after != -1) {
        Fail(ErrorCode::kInvalidArgument, path_, ":", line_,
             ": unexpected character after a closing quote");
      }
      continue;
    }
    if (c == ',') {
      field_offsets_.push_back(storage_.size());
      continue;
    }
    if (c == '\r' && Peek() == '\n') c = Get();
    if (c == '\n' || c == -1) {
      if (c == '\n') ++line_;
      field_offsets_.push_back(storage_.size());
      break;
    }
    storage_.push_back(static_cast<char>(c));
  }
  for (size_t i = 0; i + 1 < field_offsets_.size(); ++i) {
    fields->emplace_back(storage_.data() + field_offsets_[i],
                         field_offsets_[i + 1] - field_offsets_[i]);
  }
  return true;
}

bool ParseNumber(std::string_view text, double* value) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return ec == std::errc() && end == text.data() + text.size() && std::isfinite(*value);
}

}  // namespace flexmoe
