// A streaming RFC 4180 CSV reader over plain or gzip-compressed files: quoted fields with
// doubled quotes and embedded newlines, CRLF or LF line ends, with or without a final
// newline. Errors name the file and the line.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flexmoe {

// Reads one record at a time; not thread-safe. Fields stay valid until the next Next().
class CsvReader {
 public:
  // Opens `path` (gzip detected from the content). Throws kNotFound when it cannot.
  explicit CsvReader(std::string path);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // Reads the next record into fields; false at the end of the file. Throws
  // kInvalidArgument for an unterminated quote or a character after a closing quote.
  bool Next(std::vector<std::string_view>* fields);
  // The line on which the last record started (1-based).
  int64_t line() const { return record_line_; }
  // Bytes consumed from the decompressed stream so far.
  uint64_t bytes_read() const { return bytes_read_; }
  const std::string& path() const { return path_; }
  // "FILE:LINE" of the last record, for messages.
  std::string Where() const { return path_ + ":" + std::to_string(record_line_); }

 private:
  bool Fill();  // refills buffer_; false at end of input
  int Peek();   // next byte or -1
  int Get();

  std::string path_;
  gzFile file_ = nullptr;
  std::vector<char> buffer_;
  size_t pos_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  int64_t line_ = 1;
  int64_t record_line_ = 0;
  uint64_t bytes_read_ = 0;
  std::string storage_;                // the record's field bytes
  std::vector<size_t> field_offsets_;  // begin of each field in storage_, plus the end
};

// Parses a decimal number; false when the text is not entirely a finite number.
bool ParseNumber(std::string_view text, double* value);

}  // namespace flexmoe
