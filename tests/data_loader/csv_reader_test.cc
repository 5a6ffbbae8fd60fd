// CSV edge cases: quotes, doubled quotes, embedded newlines, empty fields, CRLF, gzip,
// missing final newline, and the errors for malformed quoting.
#include "data_loader/csv_reader.h"

#include <gtest/gtest.h>

#include "cluster/base/error.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

using Rows = std::vector<std::vector<std::string>>;

Rows ReadAll(const std::string& path, std::vector<int64_t>* lines = nullptr) {
  CsvReader csv(path);
  std::vector<std::string_view> fields;
  Rows rows;
  while (csv.Next(&fields)) {
    rows.emplace_back(fields.begin(), fields.end());
    if (lines) lines->push_back(csv.line());
  }
  return rows;
}

TEST(CsvReaderTest, QuotesEmptyFieldsAndEmbeddedNewlines) {
  testing::TempDir dir;
  std::string path =
      dir.Write("a.csv", "id,text,x\n1,\"a,b\",2\n2,\"say \"\"hi\"\"\",\n3,\"two\nlines\",4\n,,\n");
  std::vector<int64_t> lines;
  Rows rows = ReadAll(path, &lines);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"1", "a,b", "2"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"2", "say \"hi\"", ""}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{"3", "two\nlines", "4"}));
  EXPECT_EQ(rows[4], (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(lines, (std::vector<int64_t>{1, 2, 3, 4, 6}));
}

TEST(CsvReaderTest, CrlfAndNoFinalNewline) {
  testing::TempDir dir;
  std::string path = dir.Write("b.csv", "id,x\r\n1,2\r\n3,\"4\"");
  Rows rows = ReadAll(path);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"3", "4"}));
}

TEST(CsvReaderTest, TrailingNewlineGivesNoExtraRecord) {
  testing::TempDir dir;
  EXPECT_EQ(ReadAll(dir.Write("c.csv", "a\n1\n")).size(), 2u);
}

TEST(CsvReaderTest, GzipIsReadDirectly) {
  testing::TempDir dir;
  std::string text = "id,x\n";
  for (int i = 0; i < 20000; ++i) text += std::to_string(i) + "," + std::to_string(i * 0.5) + "\n";
  testing::WriteGzip(dir.Path("d.csv.gz"), text);
  Rows rows = ReadAll(dir.Path("d.csv.gz"));
  ASSERT_EQ(rows.size(), 20001u);
  EXPECT_EQ(rows[20000], (std::vector<std::string>{"19999", std::to_string(19999 * 0.5)}));
}

TEST(CsvReaderTest, UnterminatedQuoteNamesTheLine) {
  testing::TempDir dir;
  std::string path = dir.Write("e.csv", "a,b\n1,2\n3,\"oops\n");
  try {
    ReadAll(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("e.csv:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unterminated"), std::string::npos) << e.what();
  }
}

TEST(CsvReaderTest, TextAfterClosingQuoteIsRefused) {
  testing::TempDir dir;
  std::string path = dir.Write("f.csv", "a,b\n\"1\"x,2\n");
  EXPECT_THROW(ReadAll(path), Error);
}

TEST(CsvReaderTest, MissingFileIsNotFound) {
  try {
    CsvReader csv("/nonexistent/file.csv");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.csv"), std::string::npos);
  }
}

TEST(CsvReaderTest, ParseNumber) {
  double v = 0;
  EXPECT_TRUE(ParseNumber("1.5", &v));
  EXPECT_DOUBLE_EQ(v, 1.5);
  EXPECT_TRUE(ParseNumber(" -2e3 ", &v));
  EXPECT_DOUBLE_EQ(v, -2000);
  EXPECT_TRUE(ParseNumber("+7", &v));
  EXPECT_DOUBLE_EQ(v, 7);
  EXPECT_FALSE(ParseNumber("abc", &v));
  EXPECT_FALSE(ParseNumber("1.5x", &v));
  EXPECT_FALSE(ParseNumber("", &v));
  EXPECT_FALSE(ParseNumber("inf", &v));
  EXPECT_FALSE(ParseNumber("nan", &v));
}

}  // namespace
}  // namespace flexmoe
