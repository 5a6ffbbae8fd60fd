// Safetensors writer and validating reader (see safetensors.h).
#include "trainer/checkpoint/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this code copies host bytes as they are");

namespace flexmoe {
namespace {

using Json = nlohmann::json;
constexpr char kMetadataKey[] = "__metadata__";

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

// product(shape), or false when it overflows int64 (dimensions are non-negative).
bool ShapeProduct(const std::vector<int64_t>& shape, int64_t* product) {
  int64_t p = 1;
  for (int64_t d : shape) {
    if (d != 0 && p > std::numeric_limits<int64_t>::max() / d) return false;
    p *= d;
  }
  *product = p;
  return true;
}

uint64_t ReadLittleEndian64(const std::string& bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

std::string LittleEndian64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

// Parses the header JSON, refusing duplicate keys in any object (nlohmann would keep
// the last one silently).
Json ParseHeader(const std::string& text, const std::string& source) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  Json::parser_callback_t callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == Json::parse_event_t::key && !keys.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, callback);
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kDataLoss, source, ": invalid safetensors header JSON: ", e.what());
  }
  if (!duplicate.empty()) {
    Fail(ErrorCode::kDataLoss, source, ": duplicate key '", duplicate,
         "' in the safetensors header");
  }
  if (!header.is_object()) {
    Fail(ErrorCode::kDataLoss, source, ": safetensors header is not a JSON object");
  }
  return header;
}

// An entry's "data_offsets" before the buffer is checked.
struct Span {
  uint64_t begin;
  uint64_t end;
  const std::string* name;
};

// The "__metadata__" entry: string keys to string values.
std::map<std::string, std::string> ParseMetadata(const Json& value, const std::string& source) {
  if (!value.is_object()) Fail(ErrorCode::kDataLoss, source, ": __metadata__ is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string()) {
      Fail(ErrorCode::kDataLoss, source, ": __metadata__ value of '", key, "' is not a string");
    }
    metadata[key] = text.get<std::string>();
  }
  return metadata;
}

// One tensor's header entry, checked against itself and the data buffer's size; its
// data_offsets into `*begin` and `*end`.
SafetensorsTensor ParseTensorEntry(const std::string& name, const Json& value, uint64_t buffer_size,
                                   const std::string& source, uint64_t* begin, uint64_t* end) {
  auto bad = [&](const auto&... parts) {
    Fail(ErrorCode::kDataLoss, source, ": tensor '", name, "': ", parts...);
  };
  if (!value.is_object()) bad("header entry is not a JSON object");
  SafetensorsTensor tensor;
  tensor.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) bad("missing or non-string \"dtype\"");
  if (!ParseSafetensorsDtype(dtype->get<std::string>(), &tensor.dtype)) {
    bad("unsupported dtype \"", dtype->get<std::string>(),
        "\" (expected F32, F64, I64, I32 or U8)");
  }
  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) bad("missing or non-array \"shape\"");
  for (const Json& d : *shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{1} << 62) {
      bad("shape ", shape->dump(), " is not a list of non-negative integers");
    }
    tensor.shape.push_back(d.get<int64_t>());
  }
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    bad("\"data_offsets\" is not a pair of non-negative integers");
  }
  *begin = (*offsets)[0].get<uint64_t>();
  *end = (*offsets)[1].get<uint64_t>();
  if (*begin > *end) bad("data_offsets [", *begin, ", ", *end, "] end before they begin");
  if (*end > buffer_size) {
    bad("data_offsets [", *begin, ", ", *end, "] lie outside the ", buffer_size,
        "-byte data buffer");
  }
  int64_t elements = 0;
  const uint64_t element_size = SafetensorsDtypeSize(tensor.dtype);
  if (!ShapeProduct(tensor.shape, &elements) ||
      static_cast<uint64_t>(elements) > std::numeric_limits<uint64_t>::max() / element_size ||
      static_cast<uint64_t>(elements) * element_size != *end - *begin) {
    bad("shape ", ShapeString(tensor.shape), " of ", dtype->get<std::string>(), " needs ",
        "a different size than the ", *end - *begin, " bytes of data_offsets [", *begin, ", ", *end,
        "]");
  }
  tensor.byte_size = *end - *begin;
  return tensor;
}

// The tensors must tile the data buffer exactly: no overlap, no gap, nothing left over.
void CheckTiling(std::vector<Span>& spans, uint64_t buffer_size, const std::string& source) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const Span& span : spans) {
    if (span.begin < covered) {
      Fail(ErrorCode::kDataLoss, source, ": tensor '", *span.name, "' at [", span.begin, ", ",
           span.end, ") overlaps tensor '", *previous, "' which ends at ", covered);
    }
    if (span.begin > covered) {
      Fail(ErrorCode::kDataLoss, source, ": bytes [", covered, ", ", span.begin,
           ") of the data buffer before tensor '", *span.name, "' belong to no tensor");
    }
    covered = span.end;
    previous = span.name;
  }
  if (covered != buffer_size) {
    Fail(ErrorCode::kDataLoss, source, ": the tensors cover ", covered, " bytes of the ",
         buffer_size, "-byte data buffer",
         previous != nullptr ? " (last tensor '" + *previous + "')" : std::string());
  }
}

}  // namespace

const char* SafetensorsDtypeName(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      return "F32";
    case SafetensorsDtype::kF64:
      return "F64";
    case SafetensorsDtype::kI64:
      return "I64";
    case SafetensorsDtype::kI32:
      return "I32";
    case SafetensorsDtype::kU8:
      return "U8";
  }
  return "?";
}

size_t SafetensorsDtypeSize(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
    case SafetensorsDtype::kI32:
      return 4;
    case SafetensorsDtype::kF64:
    case SafetensorsDtype::kI64:
      return 8;
    case SafetensorsDtype::kU8:
      return 1;
  }
  return 0;
}

bool ParseSafetensorsDtype(std::string_view name, SafetensorsDtype* dtype) {
  for (SafetensorsDtype d : {SafetensorsDtype::kF32, SafetensorsDtype::kF64, SafetensorsDtype::kI64,
                             SafetensorsDtype::kI32, SafetensorsDtype::kU8}) {
    if (name == SafetensorsDtypeName(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------- writer

void SafetensorsWriter::Add(const std::string& name, SafetensorsDtype dtype,
                            const std::vector<int64_t>& shape, const void* data, size_t byte_size) {
  if (name.empty() || name == kMetadataKey) {
    Fail(ErrorCode::kInvalidArgument, "safetensors: invalid tensor name '", name, "'");
  }
  if (tensors_.count(name) > 0) {
    Fail(ErrorCode::kInvalidArgument, "safetensors: tensor '", name, "' added twice");
  }
  for (int64_t d : shape) {
    if (d < 0) {
      Fail(ErrorCode::kInvalidArgument, "safetensors: tensor '", name, "' has shape ",
           ShapeString(shape));
    }
  }
  int64_t elements = 0;
  if (!ShapeProduct(shape, &elements) ||
      static_cast<uint64_t>(elements) >
          std::numeric_limits<uint64_t>::max() / SafetensorsDtypeSize(dtype) ||
      static_cast<uint64_t>(elements) * SafetensorsDtypeSize(dtype) != byte_size) {
    Fail(ErrorCode::kInvalidArgument, "safetensors: tensor '", name, "' of shape ",
         ShapeString(shape), " and dtype ", SafetensorsDtypeName(dtype), " cannot hold ", byte_size,
         " bytes");
  }
  if (data == nullptr && byte_size > 0) {
    Fail(ErrorCode::kInvalidArgument, "safetensors: tensor '", name, "' has no data");
  }
  Entry entry{dtype, shape, std::string()};
  if (byte_size > 0) entry.bytes.assign(static_cast<const char*>(data), byte_size);
  tensors_.emplace(name, std::move(entry));
}

void SafetensorsWriter::SetMetadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

std::string SafetensorsWriter::Header() const {
  Json header = Json::object();
  uint64_t offset = 0;
  for (const auto& [name, entry] : tensors_) {
    const uint64_t end = offset + entry.bytes.size();
    header[name] = {{"dtype", SafetensorsDtypeName(entry.dtype)},
                    {"shape", entry.shape},
                    {"data_offsets", {offset, end}}};
    offset = end;
  }
  if (!metadata_.empty()) header[kMetadataKey] = metadata_;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

std::string SafetensorsWriter::Serialize() const {
  const std::string header = Header();
  std::string file = LittleEndian64(header.size()) + header;
  for (const auto& [name, entry] : tensors_) file += entry.bytes;
  return file;
}

SafetensorsWriter::Written SafetensorsWriter::Write(const std::string& path) const {
  const std::string header = Header();
  AtomicFile file(path);
  file.Write(LittleEndian64(header.size()));
  file.Write(header);
  for (const auto& [name, entry] : tensors_) file.Write(entry.bytes);
  file.Commit();
  return {file.size(), file.crc32c()};
}

// ---------------------------------------------------------------------------- reader

int64_t SafetensorsTensor::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::Load(const std::string& path) {
  return Parse(ReadFile(path), path);
}

SafetensorsFile SafetensorsFile::Parse(std::string bytes, const std::string& source) {
  if (bytes.size() < 8) {
    Fail(ErrorCode::kDataLoss, source, ": ", bytes.size(),
         " bytes is too short for a safetensors file (8-byte header length missing)");
  }
  const uint64_t header_size = ReadLittleEndian64(bytes);
  if (header_size > kSafetensorsMaxHeaderBytes) {
    Fail(ErrorCode::kDataLoss, source, ": safetensors header length ", header_size,
         " exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");
  }
  if (header_size > bytes.size() - 8) {
    Fail(ErrorCode::kDataLoss, source, ": safetensors header length ", header_size,
         " is larger than the ", bytes.size() - 8, " bytes that follow it");
  }
  const Json header = ParseHeader(bytes.substr(8, header_size), source);
  const uint64_t data_start = 8 + header_size;
  const uint64_t buffer_size = bytes.size() - data_start;

  SafetensorsFile file;
  file.source_ = source;
  std::vector<Span> spans;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      file.metadata_ = ParseMetadata(value, source);
      continue;
    }
    uint64_t begin = 0, end = 0;
    SafetensorsTensor tensor = ParseTensorEntry(name, value, buffer_size, source, &begin, &end);
    auto inserted = file.tensors_.emplace(name, std::move(tensor));
    spans.push_back({begin, end, &inserted.first->first});
  }
  CheckTiling(spans, buffer_size, source);

  auto shared = std::make_shared<const std::string>(std::move(bytes));
  const uint8_t* data = reinterpret_cast<const uint8_t*>(shared->data()) + data_start;
  for (const Span& span : spans) file.tensors_.at(*span.name).data = data + span.begin;
  file.bytes_ = std::move(shared);
  return file;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  for (const auto& entry : tensors_) names.push_back(entry.first);
  return names;
}

const SafetensorsTensor& SafetensorsFile::Get(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) Fail(ErrorCode::kNotFound, source_, ": no tensor '", name, "'");
  return it->second;
}

const SafetensorsTensor& SafetensorsFile::Expect(const std::string& name, SafetensorsDtype dtype,
                                                 const std::vector<int64_t>& shape) const {
  const SafetensorsTensor& tensor = Get(name);
  if (tensor.dtype != dtype || tensor.shape != shape) {
    Fail(ErrorCode::kInvalidArgument, source_, ": tensor '", name, "' is ",
         SafetensorsDtypeName(tensor.dtype), " ", ShapeString(tensor.shape), ", expected ",
         SafetensorsDtypeName(dtype), " ", ShapeString(shape));
  }
  return tensor;
}

void SafetensorsFile::CopyTo(const std::string& name, SafetensorsDtype dtype,
                             const std::vector<int64_t>& shape, void* out, size_t byte_size) const {
  const SafetensorsTensor& tensor = Expect(name, dtype, shape);
  if (tensor.byte_size != byte_size) {
    Fail(ErrorCode::kInvalidArgument, source_, ": tensor '", name, "' has ", tensor.byte_size,
         " bytes, the destination ", byte_size);
  }
  if (byte_size > 0) std::memcpy(out, tensor.data, byte_size);
}

}  // namespace flexmoe
