// TensorBoard event files: TFRecord framing (a little-endian u64 length, its masked
// CRC32C, the record, the record's masked CRC32C) around Event messages
// (proto/tensorboard.proto). The writer appends scalars to
// DIR/events.out.tfevents.<seconds>.<host>; the reader checks every CRC.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "proto/tensorboard.pb.h"

namespace flexmoe {

// TFRecord's mask over a CRC32C.
uint32_t MaskedCrc32c(const void* data, size_t size);

class EventWriter {
 public:
  // Creates the directory and a new event file in it (kNotFound naming it when it cannot).
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void Scalar(const std::string& tag, int64_t step, double value);
  // Makes what was written visible to readers.
  void Flush();
  const std::string& path() const { return path_; }

 private:
  void Write(const tensorboard::Event& event);

  std::string path_;
  std::FILE* file_ = nullptr;
};

// Every record of a TFRecord file, each length and record CRC checked (kDataLoss naming the
// file and the record's offset otherwise).
std::vector<std::string> ReadTfRecords(const std::string& path);

}  // namespace flexmoe
