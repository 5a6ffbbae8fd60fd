// TFRecord event files (tensorboard.h).
#include "cluster/metrics/tensorboard.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "cluster/base/atomic_file.h"
#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"

namespace flexmoe {
namespace {

std::string LittleEndian(uint64_t value, int bytes) {
  std::string out(bytes, '\0');
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

uint64_t FromLittleEndian(const std::string& bytes, size_t at, int n) {
  uint64_t value = 0;
  for (int i = n - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t MaskedCrc32c(const void* data, size_t size) {
  const uint32_t crc = Crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char host[128] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "host");
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(Now())) + "." + host +
          "." + std::to_string(::getpid());
  file_ = std::fopen(path_.c_str(), "ab");
  if (file_ == nullptr) {
    Fail(ErrorCode::kNotFound, "cannot create ", path_, ": ", std::strerror(errno));
  }
  tensorboard::Event first;
  first.set_wall_time(Now());
  first.set_file_version("brain.Event:2");
  Write(first);
  Flush();
}

EventWriter::~EventWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void EventWriter::Scalar(const std::string& tag, int64_t step, double value) {
  tensorboard::Event event;
  event.set_wall_time(Now());
  event.set_step(step);
  tensorboard::SummaryValue* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  Write(event);
}

void EventWriter::Write(const tensorboard::Event& event) {
  const std::string data = event.SerializeAsString();
  const std::string length = LittleEndian(data.size(), 8);
  const std::string record = length + LittleEndian(MaskedCrc32c(length.data(), 8), 4) + data +
                             LittleEndian(MaskedCrc32c(data.data(), data.size()), 4);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    Fail(ErrorCode::kInternal, "write to ", path_, " failed: ", std::strerror(errno));
  }
}

void EventWriter::Flush() { std::fflush(file_); }

std::vector<std::string> ReadTfRecords(const std::string& path) {
  const std::string bytes = ReadFile(path);
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) Fail(ErrorCode::kDataLoss, path, ": truncated record at ", at);
    const uint64_t length = FromLittleEndian(bytes, at, 8);
    if (FromLittleEndian(bytes, at + 8, 4) != MaskedCrc32c(bytes.data() + at, 8)) {
      Fail(ErrorCode::kDataLoss, path, ": length CRC mismatch at byte ", at);
    }
    if (length > bytes.size() - at - 16) {
      Fail(ErrorCode::kDataLoss, path, ": record at byte ", at, " runs past the end");
    }
    const std::string data = bytes.substr(at + 12, length);
    if (FromLittleEndian(bytes, at + 12 + length, 4) != MaskedCrc32c(data.data(), data.size())) {
      Fail(ErrorCode::kDataLoss, path, ": record CRC mismatch at byte ", at);
    }
    records.push_back(data);
    at += 16 + length;
  }
  return records;
}

}  // namespace flexmoe
