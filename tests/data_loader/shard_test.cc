// Shard records: round trip, a flipped byte and a truncated file are refused with the
// record named.
#include "data_loader/shard.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cluster/base/error.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

data::SampleRecord MakeRecord(int i) {
  data::SampleRecord r;
  r.set_id("s" + std::to_string(i));
  r.set_label(i % 3);
  r.set_combination(i % 15);
  r.add_features(std::string(16 + i, static_cast<char>('a' + i)));
  r.add_features("");
  return r;
}

std::string WriteShard(const testing::TempDir& dir, std::vector<uint64_t>* offsets) {
  std::string path = dir.Path("s.rec");
  ShardWriter writer(path);
  for (int i = 0; i < 3; ++i) offsets->push_back(writer.Append(MakeRecord(i)));
  writer.Commit();
  return path;
}

std::string ErrorOf(const std::string& path) {
  try {
    ShardReader reader(path);
    data::SampleRecord r;
    while (reader.Next(&r)) {
    }
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    return e.what();
  }
  return "";
}

TEST(ShardTest, RoundTripSequentialAndAtOffset) {
  testing::TempDir dir;
  std::vector<uint64_t> offsets;
  std::string path = WriteShard(dir, &offsets);
  ShardReader reader(path);
  data::SampleRecord r;
  uint64_t offset = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(reader.Next(&r, &offset));
    EXPECT_EQ(offset, offsets[i]);
    EXPECT_EQ(r.SerializeAsString(), MakeRecord(i).SerializeAsString());
  }
  EXPECT_FALSE(reader.Next(&r));
  reader.ReadAt(offsets[1], &r);
  EXPECT_EQ(r.id(), "s1");
}

TEST(ShardTest, FlippedByteIsRefusedNamingTheRecord) {
  testing::TempDir dir;
  std::vector<uint64_t> offsets;
  std::string path = WriteShard(dir, &offsets);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offsets[1] + 12));
    char c;
    f.read(&c, 1);
    c ^= 0x01;
    f.seekp(static_cast<std::streamoff>(offsets[1] + 12));
    f.write(&c, 1);
  }
  std::string message = ErrorOf(path);
  EXPECT_NE(
      message.find("s.rec: record 1 at byte " + std::to_string(offsets[1]) + ": checksum mismatch"),
      std::string::npos)
      << message;
}

TEST(ShardTest, TruncatedShardIsRefusedNamingTheRecord) {
  testing::TempDir dir;
  std::vector<uint64_t> offsets;
  std::string path = WriteShard(dir, &offsets);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 5);
  std::string message = ErrorOf(path);
  EXPECT_NE(message.find("record 2 at byte " + std::to_string(offsets[2]) + ": truncated"),
            std::string::npos)
      << message;
  // A cut inside a header too.
  std::filesystem::resize_file(path, offsets[2] + 3);
  message = ErrorOf(path);
  EXPECT_NE(
      message.find("record 2 at byte " + std::to_string(offsets[2]) + ": truncated record header"),
      std::string::npos)
      << message;
}

TEST(ShardTest, NotAShardIsRefusedAndClosed) {
  testing::TempDir dir;
  const size_t open_before = testing::OpenDescriptors();
  std::string message = ErrorOf(dir.Write("x.rec", "hello world"));
  EXPECT_NE(message.find("bad magic"), std::string::npos) << message;
  EXPECT_EQ(testing::OpenDescriptors(), open_before);
}

}  // namespace
}  // namespace flexmoe
