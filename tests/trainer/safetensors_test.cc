// Tests of trainer/safetensors: round trip, the byte layout of the standard format, and
// refusal of each kind of malformed file with an error naming the file (and tensor).
#include "trainer/checkpoint/safetensors.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "safetensors_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // A file with the given header (used as is, no padding) and data buffer.
  std::string WriteRaw(const std::string& name, const std::string& header,
                       const std::string& data) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    const std::string path = Path(name);
    WriteFileAtomically(path, bytes + header + data);
    return path;
  }

  // Expects Load(path) to throw `code` with every part in the message.
  void ExpectRefused(const std::string& path, const std::vector<std::string>& parts,
                     ErrorCode code = ErrorCode::kDataLoss) {
    try {
      SafetensorsFile::Load(path);
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      for (const std::string& part : parts) {
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
            << "'" << part << "' not in: " << e.what();
      }
    }
  }

  std::string dir_;
};

TEST_F(SafetensorsTest, RoundTrip) {
  const std::vector<float> weights = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, 7.0f};
  const std::vector<int64_t> steps = {1, -2, int64_t{1} << 40, 4};
  const std::vector<uint8_t> mask = {1, 0, 1, 1, 0};  // odd size: later tensors unaligned
  const double scalar = 3.141592653589793;
  const std::vector<int32_t> counts = {7, -8};

  SafetensorsWriter writer;
  writer.Add("layer.weight", SafetensorsDtype::kF32, {2, 3}, weights.data(),
             weights.size() * sizeof(float));
  writer.Add("a_mask", SafetensorsDtype::kU8, {5}, mask.data(), mask.size());
  writer.Add("b_steps", SafetensorsDtype::kI64, {4}, steps.data(), steps.size() * 8);
  writer.Add("c_scalar", SafetensorsDtype::kF64, {}, &scalar, sizeof(scalar));
  writer.Add("d_empty", SafetensorsDtype::kF32, {0, 3}, nullptr, 0);
  writer.Add("e_counts", SafetensorsDtype::kI32, {2}, counts.data(), 8);
  writer.SetMetadata("format", "pt");
  writer.SetMetadata("step", "12");
  const std::string path = Path("model.safetensors");
  writer.Write(path);

  const SafetensorsFile file = SafetensorsFile::Load(path);
  EXPECT_EQ(file.source(), path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a_mask", "b_steps", "c_scalar", "d_empty",
                                                    "e_counts", "layer.weight"}));
  EXPECT_EQ(file.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}}));

  std::vector<float> weights_back(6);
  file.CopyTo("layer.weight", SafetensorsDtype::kF32, {2, 3}, weights_back.data(), 24);
  EXPECT_EQ(weights_back, weights);
  std::vector<int64_t> steps_back(4);
  file.CopyTo("b_steps", SafetensorsDtype::kI64, {4}, steps_back.data(), 32);
  EXPECT_EQ(steps_back, steps);
  const SafetensorsTensor& m = file.Expect("a_mask", SafetensorsDtype::kU8, {5});
  EXPECT_EQ(std::vector<uint8_t>(m.data, m.data + m.byte_size), mask);
  double scalar_back = 0;
  file.CopyTo("c_scalar", SafetensorsDtype::kF64, {}, &scalar_back, 8);
  EXPECT_EQ(scalar_back, scalar);
  EXPECT_EQ(file.Get("c_scalar").num_elements(), 1);
  EXPECT_EQ(file.Get("d_empty").num_elements(), 0);
  EXPECT_EQ(file.Get("d_empty").byte_size, 0u);
  std::vector<int32_t> counts_back(2);
  file.CopyTo("e_counts", SafetensorsDtype::kI32, {2}, counts_back.data(), 8);
  EXPECT_EQ(counts_back, counts);

  // Serialize() gives the same bytes as the file, and no temporary file is left behind.
  EXPECT_EQ(ReadFile(path), writer.Serialize());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(SafetensorsTest, StandardByteLayout) {
  const float data[2] = {1.0f, 2.0f};
  SafetensorsWriter writer;
  writer.Add("a", SafetensorsDtype::kF32, {2}, data, sizeof(data));
  const std::string bytes = writer.Serialize();
  // JSON: 54 bytes, padded with 2 spaces to 56 (a multiple of 8).
  const std::string json = R"({"a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})";
  ASSERT_EQ(json.size(), 54u);
  ASSERT_EQ(bytes.size(), 8u + 56u + 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x38\0\0\0\0\0\0\0", 8));  // 56, little-endian
  EXPECT_EQ(bytes.substr(8, 56), json + "  ");
  // 1.0f = 0x3f800000, 2.0f = 0x40000000, little-endian.
  EXPECT_EQ(bytes.substr(64), std::string("\0\0\x80\x3f\0\0\0\x40", 8));
}

TEST_F(SafetensorsTest, ReadsFileWrittenByOthers) {
  // As Python's safetensors writes it: other key order, metadata first, tensors ordered by
  // offset rather than by name, spaces in the JSON, header length not padded.
  const std::string header =
      R"({"__metadata__": {"format": "pt"}, "z": {"dtype": "I32", "shape": [1], )"
      R"("data_offsets": [0, 4]}, "a": {"shape": [1, 1], "dtype": "F64", "data_offsets": [4, 12]}})";
  const int32_t z = 42;
  const double a = -0.5;
  std::string data(12, '\0');
  std::memcpy(&data[0], &z, 4);
  std::memcpy(&data[4], &a, 8);
  const SafetensorsFile file = SafetensorsFile::Load(WriteRaw("py.safetensors", header, data));
  int32_t z_back = 0;
  double a_back = 0;
  file.CopyTo("z", SafetensorsDtype::kI32, {1}, &z_back, 4);
  file.CopyTo("a", SafetensorsDtype::kF64, {1, 1}, &a_back, 8);
  EXPECT_EQ(z_back, 42);
  EXPECT_EQ(a_back, -0.5);
  EXPECT_EQ(file.metadata().at("format"), "pt");
}

TEST_F(SafetensorsTest, MalformedFilesAreRefused) {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string eight(8, '\0');

  std::string path = Path("short.safetensors");
  WriteFileAtomically(path, "abc");
  ExpectRefused(path, {"3 bytes", "too short"});

  path = Path("long_header.safetensors");
  WriteFileAtomically(path, std::string("\x64\0\0\0\0\0\0\0", 8) + "{}        ");
  ExpectRefused(path, {"header length 100", "larger than the 10 bytes"});

  path = Path("huge_header.safetensors");
  WriteFileAtomically(path, std::string("\0\xc2\xeb\x0b\0\0\0\0", 8) + "{}");  // 200000000
  ExpectRefused(path, {"header length 200000000", "exceeds"});

  ExpectRefused(WriteRaw("json.safetensors", "{not json", ""), {"invalid", "JSON"});
  ExpectRefused(WriteRaw("array.safetensors", "[1, 2]", ""), {"not a JSON object"});
  ExpectRefused(WriteRaw("utf8.safetensors", "{\"\xff\": 1}", ""), {"invalid"});
  ExpectRefused(WriteRaw("dtype.safetensors",
                         R"({"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}})", eight),
                {"tensor 'w'", "BF16"});
  ExpectRefused(WriteRaw("size.safetensors",
                         R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
                {"tensor 'w'", "shape [3]"});
  ExpectRefused(WriteRaw("negative.safetensors",
                         R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
                {"tensor 'w'", "shape"});
  ExpectRefused(WriteRaw("outside.safetensors",
                         R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
                {"tensor 'w'", "outside the 8-byte data buffer"});
  ExpectRefused(WriteRaw("reversed.safetensors",
                         R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", eight),
                {"tensor 'w'", "end before they begin"});
  ExpectRefused(WriteRaw("offsets.safetensors", R"({"w":{"dtype":"U8","shape":[8]}})", eight),
                {"tensor 'w'", "data_offsets"});
  ExpectRefused(WriteRaw("overlap.safetensors",
                         "{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 +
                             R"(,"data_offsets":[4,12]}})",
                         std::string(12, '\0')),
                {"tensor 'b'", "overlaps tensor 'a'"});
  ExpectRefused(WriteRaw("gap.safetensors",
                         R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         std::string(12, '\0')),
                {"before tensor 'b'", "belong to no tensor"});
  ExpectRefused(WriteRaw("uncovered.safetensors",
                         R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
                {"cover 4 bytes of the 8-byte data buffer", "'a'"});
  ExpectRefused(WriteRaw("duplicate.safetensors",
                         "{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"a":{)" + f32x2 +
                             R"(,"data_offsets":[8,16]}})",
                         std::string(16, '\0')),
                {"duplicate key 'a'"});
  ExpectRefused(WriteRaw("metadata.safetensors", R"({"__metadata__":{"step":12}})", ""),
                {"__metadata__", "'step'"});
  ExpectRefused(Path("missing.safetensors"), {}, ErrorCode::kNotFound);
}

TEST_F(SafetensorsTest, AccessErrorsNameFileAndTensor) {
  SafetensorsWriter writer;
  const float x = 1;
  writer.Add("x", SafetensorsDtype::kF32, {1}, &x, 4);
  const std::string path = Path("x.safetensors");
  writer.Write(path);
  const SafetensorsFile file = SafetensorsFile::Load(path);
  try {
    file.Get("y");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(std::string(e.what()), path + ": no tensor 'y'");
  }
  try {
    file.Expect("x", SafetensorsDtype::kF64, {1, 1});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()), path + ": tensor 'x' is F32 [1], expected F64 [1, 1]");
  }
  float out[2];
  EXPECT_THROW(file.CopyTo("x", SafetensorsDtype::kF32, {1}, out, 8), Error);
}

TEST_F(SafetensorsTest, WriterRefusesBadTensors) {
  SafetensorsWriter writer;
  const float data[4] = {};
  writer.Add("w", SafetensorsDtype::kF32, {2, 2}, data, 16);
  EXPECT_THROW(writer.Add("w", SafetensorsDtype::kF32, {2, 2}, data, 16), Error);
  EXPECT_THROW(writer.Add("v", SafetensorsDtype::kF32, {2, 2}, data, 12), Error);
  EXPECT_THROW(writer.Add("v", SafetensorsDtype::kF32, {-1}, data, 0), Error);
  EXPECT_THROW(writer.Add("__metadata__", SafetensorsDtype::kU8, {1}, data, 1), Error);
  EXPECT_THROW(writer.Add("", SafetensorsDtype::kU8, {1}, data, 1), Error);
  EXPECT_THROW(writer.Add("v", SafetensorsDtype::kU8, {1}, nullptr, 1), Error);
  EXPECT_EQ(writer.num_tensors(), 1u);
}

TEST_F(SafetensorsTest, RewriteReplacesAtomically) {
  const std::string path = Path("ckpt.safetensors");
  WriteFileAtomically(path, "old contents");
  SafetensorsWriter writer;
  writer.SetMetadata("epoch", "3");
  writer.Write(path);
  const SafetensorsFile file = SafetensorsFile::Load(path);
  EXPECT_EQ(file.num_tensors(), 0u);
  EXPECT_EQ(file.metadata().at("epoch"), "3");
}

}  // namespace
}  // namespace flexmoe
