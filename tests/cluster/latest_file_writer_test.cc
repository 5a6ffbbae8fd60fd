// LatestFileWriter: the newest version reaches the file, versions submitted while a write
// runs collapse, a flush waits for what was submitted, a failed write is counted and does not
// stop later ones, and destruction writes what is pending.
#include "cluster/base/latest_file_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cluster/base/atomic_file.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

TEST(LatestFileWriterTest, TheNewestVersionIsWrittenAndOlderOnesCollapse) {
  testing::TempDir dir;
  const std::string path = dir.Path("job.json");
  LatestFileWriter writer(path);
  for (int i = 0; i < 1000; ++i) writer.Submit("version " + std::to_string(i) + "\n");
  ASSERT_TRUE(writer.Flush(std::chrono::seconds(30)));
  EXPECT_EQ(ReadFile(path), "version 999\n");
  EXPECT_GE(writer.writes(), 1u);
  EXPECT_LT(writer.writes(), 1000u);  // collapsed: not one fsync per version
  EXPECT_EQ(writer.failures(), 0u);
  EXPECT_GT(writer.longest_write_s(), 0.0);  // timed: the coordinator publishes it
}

TEST(LatestFileWriterTest, AFailedWriteIsCountedAndTheNextOneLands) {
  testing::TempDir dir;
  const std::string folder = dir.Path("later");
  LatestFileWriter writer(folder + "/job.json");
  writer.Submit("first\n");  // its directory does not exist yet
  ASSERT_TRUE(writer.Flush(std::chrono::seconds(30)));
  EXPECT_EQ(writer.failures(), 1u);
  std::filesystem::create_directories(folder);
  writer.Submit("second\n");
  ASSERT_TRUE(writer.Flush(std::chrono::seconds(30)));
  EXPECT_EQ(ReadFile(folder + "/job.json"), "second\n");
}

TEST(LatestFileWriterTest, DestructionWritesWhatIsPending) {
  testing::TempDir dir;
  const std::string path = dir.Path("job.json");
  {
    LatestFileWriter writer(path);
    writer.Submit("a\n");
    writer.Submit("b\n");
  }
  EXPECT_EQ(ReadFile(path), "b\n");
}

}  // namespace
}  // namespace flexmoe
