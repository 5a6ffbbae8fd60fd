// Checkpoint file entries and their verification (checkpoint_files.h).
#include "trainer/checkpoint/checkpoint_files.h"

#include <filesystem>
#include <set>

#include "cluster/base/atomic_file.h"
#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"

namespace flexmoe {

using Json = nlohmann::json;

Json FileEntryToJson(const FileEntry& file) {
  Json tensors = Json::array();
  for (const TensorEntry& t : file.tensors) {
    Json entry = {{"name", t.name},
                  {"parameter", t.parameter},
                  {"role", t.role},
                  {"dtype", t.dtype},
                  {"shape", t.shape}};
    if (t.layer >= 0) entry["layer"] = t.layer;
    if (t.expert >= 0) entry["expert"] = t.expert;
    tensors.push_back(entry);
  }
  return {{"name", file.name},
          {"rank", file.rank},
          {"bytes", file.bytes},
          {"crc32c", file.crc32c},
          {"tensors", tensors}};
}

FileEntry FileEntryFromJson(const Json& json, const std::string& source) {
  FileEntry file;
  try {
    file.name = json.at("name").get<std::string>();
    file.rank = json.at("rank").get<int>();
    file.bytes = json.at("bytes").get<uint64_t>();
    file.crc32c = json.at("crc32c").get<uint32_t>();
    for (const Json& t : json.at("tensors")) {
      TensorEntry entry;
      entry.name = t.at("name").get<std::string>();
      entry.parameter = t.at("parameter").get<std::string>();
      entry.role = t.at("role").get<std::string>();
      entry.dtype = t.at("dtype").get<std::string>();
      entry.shape = t.at("shape").get<std::vector<int64_t>>();
      entry.layer = t.value("layer", -1);
      entry.expert = t.value("expert", int64_t{-1});
      file.tensors.push_back(std::move(entry));
    }
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kDataLoss, source, ": bad file entry: ", e.what());
  }
  if (file.name.empty() || file.name.find('/') != std::string::npos || file.name[0] == '.') {
    Fail(ErrorCode::kDataLoss, source, ": bad file name '", file.name, "'");
  }
  return file;
}

std::string ReadVerifiedFile(const std::string& dir, const FileEntry& file) {
  const std::string path = dir + "/" + file.name;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    Fail(ErrorCode::kNotFound, path, ": missing (listed in ", dir, "/", kManifestFile, ")");
  }
  std::string bytes = ReadFile(path);
  if (bytes.size() != file.bytes) {
    Fail(ErrorCode::kDataLoss, path, ": ", bytes.size(), " bytes, the manifest says ", file.bytes,
         bytes.size() < file.bytes ? " (truncated)" : "");
  }
  const uint32_t crc = Crc32c(bytes.data(), bytes.size());
  if (crc != file.crc32c) {
    Fail(ErrorCode::kDataLoss, path, ": CRC32C ", crc, ", the manifest says ", file.crc32c,
         " (the file is corrupted)");
  }
  return bytes;
}

SafetensorsFile LoadVerifiedSafetensors(const std::string& dir, const FileEntry& file) {
  const std::string path = dir + "/" + file.name;
  SafetensorsFile loaded = SafetensorsFile::Parse(ReadVerifiedFile(dir, file), path);
  std::set<std::string> listed;
  for (const TensorEntry& t : file.tensors) {
    SafetensorsDtype dtype;
    if (!ParseSafetensorsDtype(t.dtype, &dtype)) {
      Fail(ErrorCode::kDataLoss, path, ": tensor ", t.name, ": unknown dtype ", t.dtype);
    }
    try {
      loaded.Expect(t.name, dtype, t.shape);
    } catch (const Error& e) {
      Fail(ErrorCode::kDataLoss, e.what(), " (the manifest lists it)");
    }
    listed.insert(t.name);
  }
  if (listed.size() != loaded.num_tensors()) {
    Fail(ErrorCode::kDataLoss, path, ": holds ", loaded.num_tensors(),
         " tensors, the manifest lists ", listed.size());
  }
  return loaded;
}

namespace {
constexpr char kSealKey[] = "manifest_crc32c";
std::string UnsealedText(const Json& manifest) { return manifest.dump(2) + "\n"; }
}  // namespace

std::string SealedManifestText(Json manifest) {
  manifest.erase(kSealKey);
  const std::string text = UnsealedText(manifest);
  manifest[kSealKey] = Crc32c(text.data(), text.size());
  return UnsealedText(manifest);
}

Json ReadManifestJson(const std::string& dir) {
  const std::string path = dir + "/" + kManifestFile;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    Fail(ErrorCode::kNotFound, path, ": no manifest: not a complete checkpoint");
  }
  Json manifest;
  try {
    manifest = Json::parse(ReadFile(path));
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kDataLoss, path, ": invalid manifest: ", e.what());
  }
  if (!manifest.is_object() || !manifest.contains(kSealKey) ||
      !manifest[kSealKey].is_number_unsigned()) {
    Fail(ErrorCode::kDataLoss, path, ": no ", kSealKey, " (not a flexmoe manifest)");
  }
  const uint32_t sealed = manifest[kSealKey].get<uint32_t>();
  manifest.erase(kSealKey);
  const std::string text = UnsealedText(manifest);
  if (Crc32c(text.data(), text.size()) != sealed) {
    Fail(ErrorCode::kDataLoss, path, ": its CRC32C does not match its contents (the manifest ",
         "is corrupted)");
  }
  return manifest;
}

}  // namespace flexmoe
