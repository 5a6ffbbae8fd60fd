// The temporary file of parsed rows (spilled_rows.h).
#include "data_loader/spilled_rows.h"

#include <cerrno>
#include <cstring>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

constexpr size_t kBufferBytes = 1 << 20;

}  // namespace

SpilledRows::SpilledRows() : file_(std::tmpfile()), buffer_(new char[kBufferBytes]) {
  if (!file_) {
    Fail(ErrorCode::kUnavailable,
         "cannot create a temporary file for the parsed rows: ", std::strerror(errno));
  }
  std::setvbuf(file_.get(), buffer_.get(), _IOFBF, kBufferBytes);
}

void SpilledRows::Write(const void* data, size_t bytes) {
  if (bytes > 0 && std::fwrite(data, 1, bytes, file_.get()) != bytes) {
    Fail(ErrorCode::kUnavailable,
         "cannot write the temporary file of parsed rows: ", std::strerror(errno));
  }
}

void SpilledRows::Read(void* data, size_t bytes) {
  if (bytes > 0 && std::fread(data, 1, bytes, file_.get()) != bytes) {
    Fail(ErrorCode::kDataLoss, "the temporary file of parsed rows ends early (row ", read_, " of ",
         rows_, ")");
  }
}

void SpilledRows::Append(const RawRow& row, int64_t line) {
  const uint32_t sizes[4] = {static_cast<uint32_t>(row.id.size()),
                             static_cast<uint32_t>(row.label.size()), row.mask,
                             static_cast<uint32_t>(row.values.size())};
  Write(sizes, sizeof(sizes));
  Write(&line, sizeof(line));
  Write(row.id.data(), row.id.size());
  Write(row.label.data(), row.label.size());
  Write(row.values.data(), row.values.size() * sizeof(double));
  ++rows_;
}

void SpilledRows::StartReading(const std::string& path) {
  if (std::fflush(file_.get()) != 0 || std::fseek(file_.get(), 0, SEEK_SET) != 0) {
    Fail(ErrorCode::kUnavailable,
         "cannot rewind the temporary file of parsed rows: ", std::strerror(errno));
  }
  path_ = path;
  read_ = 0;
}

bool SpilledRows::Next(RawRow* row) {
  if (read_ == rows_) return false;
  uint32_t sizes[4];
  int64_t line = 0;
  Read(sizes, sizeof(sizes));
  Read(&line, sizeof(line));
  row->id.resize(sizes[0]);
  Read(row->id.data(), sizes[0]);
  row->label.resize(sizes[1]);
  Read(row->label.data(), sizes[1]);
  row->mask = sizes[2];
  row->values.resize(sizes[3]);
  Read(row->values.data(), sizes[3] * sizeof(double));
  row->where = path_ + ":" + std::to_string(line);
  ++read_;
  return true;
}

}  // namespace flexmoe
