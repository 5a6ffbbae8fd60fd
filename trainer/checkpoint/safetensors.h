// The safetensors checkpoint format: a writer (atomic, tensors sorted by name) and a
// validating reader. Files are readable by Python's `safetensors` package and vice versa.
//
// Layout: 8-byte little-endian header length N; N bytes of JSON header
//   {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// padded with spaces to a multiple of 8 bytes; then the data buffer, in which each
// tensor occupies [begin, end), row-major, little-endian, with no gaps or overlaps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flexmoe {

// The element types we read and write (a subset of safetensors' dtypes).
enum class SafetensorsDtype { kF32, kF64, kI64, kI32, kU8 };

// "F32", "F64", "I64", "I32", "U8".
const char* SafetensorsDtypeName(SafetensorsDtype dtype);
// Bytes per element.
size_t SafetensorsDtypeSize(SafetensorsDtype dtype);
// Parses a dtype name; false when it is not one of ours.
bool ParseSafetensorsDtype(std::string_view name, SafetensorsDtype* dtype);

// Headers larger than this are refused by the reader (as the Python package does).
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Collects tensors and metadata, then writes one file. Add() copies the bytes, so the
// caller's buffers may go away before Write(). Not thread-safe.
class SafetensorsWriter {
 public:
  // Adds a tensor. `data` holds `byte_size` bytes in the host's (little-endian) order;
  // byte_size must equal product(shape) * SafetensorsDtypeSize(dtype). An empty shape is
  // a scalar. Throws kInvalidArgument (naming the tensor) on an empty, reserved
  // ("__metadata__") or duplicate name, a negative dimension or a size mismatch.
  void Add(const std::string& name, SafetensorsDtype dtype, const std::vector<int64_t>& shape,
           const void* data, size_t byte_size);
  // Sets a "__metadata__" entry (string to string); a later call replaces the value.
  void SetMetadata(const std::string& key, const std::string& value);

  size_t num_tensors() const { return tensors_.size(); }

  // The complete file contents.
  std::string Serialize() const;
  // Writes the file atomically (temporary name, fsync, rename): a failure leaves any
  // previous file at `path` intact. Throws Error on I/O failure. Returns the file's size
  // and CRC32C.
  struct Written {
    uint64_t bytes = 0;
    uint32_t crc32c = 0;
  };
  Written Write(const std::string& path) const;

 private:
  struct Entry {
    SafetensorsDtype dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  // The padded JSON header (without the 8-byte length).
  std::string Header() const;

  std::map<std::string, Entry> tensors_;  // sorted by name: the order in the data buffer
  std::map<std::string, std::string> metadata_;
};

// One tensor of a loaded file. `data` points into the file's buffer, which the
// SafetensorsFile owns; it may be unaligned, so copy it out with memcpy.
struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t byte_size = 0;

  int64_t num_elements() const;
};

// A whole safetensors file held in memory and validated on load. Copies share the
// buffer; tensor data pointers stay valid while any copy lives. Read-only, thread-safe.
class SafetensorsFile {
 public:
  // Reads and validates `path`. Throws kNotFound when it cannot be read, kDataLoss
  // (naming the file and, where there is one, the tensor) when it is malformed: shorter
  // than 8 bytes, header length beyond the file or over kSafetensorsMaxHeaderBytes,
  // invalid JSON or UTF-8, duplicate keys, unknown dtype, bad shape or offsets, a size
  // that does not match shape and dtype, offsets outside the buffer, overlapping, or
  // leaving part of the buffer uncovered, or a non-string metadata value.
  static SafetensorsFile Load(const std::string& path);
  // The same on bytes already in memory; `source` names them in error messages.
  static SafetensorsFile Parse(std::string bytes, const std::string& source);

  const std::string& source() const { return source_; }
  // Tensor names, sorted.
  std::vector<std::string> names() const;
  size_t num_tensors() const { return tensors_.size(); }
  bool Contains(const std::string& name) const { return tensors_.count(name) > 0; }
  // Throws kNotFound naming the file and the tensor when it is absent.
  const SafetensorsTensor& Get(const std::string& name) const;
  // Get() that also checks the dtype and shape; throws kInvalidArgument naming the file,
  // the tensor, and what was expected and found.
  const SafetensorsTensor& Expect(const std::string& name, SafetensorsDtype dtype,
                                  const std::vector<int64_t>& shape) const;
  // Copies a tensor's bytes to `out`, which has room for `byte_size` bytes, after
  // Expect(name, dtype, shape) and a size check.
  void CopyTo(const std::string& name, SafetensorsDtype dtype, const std::vector<int64_t>& shape,
              void* out, size_t byte_size) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string source_;
  std::shared_ptr<const std::string> bytes_;
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace flexmoe
