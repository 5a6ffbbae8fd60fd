// Loader frames (round trip, every header check, checksum) and the job token sources.
#include "data_loader/loader_wire.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cluster/base/error.h"
#include "cluster/net/job_token.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

std::string ErrorOf(const std::function<void()>& f, ErrorCode* code = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return "";
}

FrameHeader Header(const std::string& frame, uint32_t limit) {
  uint8_t bytes[kFrameHeaderSize];
  std::memcpy(bytes, frame.data(), kFrameHeaderSize);
  return ParseFrameHeader(bytes, limit);
}

DecodedBatch SampleBatch() {
  DecodedBatch b;
  b.size = 2;
  b.features = {{1.5f, -2.0f, 3.25f, 4.0f}, {}, {0.5f, 0.25f}};  // F = 2, 0, 1
  b.observed = {1, 0, 1, 1, 0, 0};
  b.combination = {1, 3};
  b.label = {2, 0};
  b.sample = {17, 4};
  b.weight = {1.0f, 0.0f};
  b.global_label_weight = {3.0, 0.0, 2.5};  // the whole global batch's, per label
  return b;
}

TEST(LoaderWireTest, BatchRoundTripsWithRawLittleEndianFeatures) {
  const DecodedBatch batch = SampleBatch();
  const std::string frame = EncodeBatchFrame(7, 42, batch);
  const FrameHeader header = Header(frame, 1 << 20);
  EXPECT_EQ(header.type, loader::BATCH);
  EXPECT_EQ(header.length, frame.size() - kFrameHeaderSize);
  // The features are the last bytes of the frame, as float32 in order.
  float tail[2];
  std::memcpy(tail, frame.data() + frame.size() - 8, 8);
  EXPECT_EQ(tail[0], 0.5f);
  EXPECT_EQ(tail[1], 0.25f);
  loader::BatchMeta meta;
  const std::string body = frame.substr(kFrameHeaderSize);
  const std::string_view raw = ParseFrameBody(header, body, &meta);
  EXPECT_EQ(raw.size(), 6 * sizeof(float));
  EXPECT_EQ(meta.stream_id(), 7u);
  EXPECT_EQ(meta.step(), 42);
  const DecodedBatch back = DecodeBatch(meta, raw, {2, 0, 1});
  EXPECT_EQ(back.features, batch.features);
  EXPECT_EQ(back.observed, batch.observed);
  EXPECT_EQ(back.combination, batch.combination);
  EXPECT_EQ(back.label, batch.label);
  EXPECT_EQ(back.sample, batch.sample);
  EXPECT_EQ(back.weight, batch.weight);
  EXPECT_EQ(back.global_label_weight, batch.global_label_weight);
  // A negative or non-finite loss weight is refused, naming the field.
  for (double bad : {-1.0, std::nan("")}) {
    loader::BatchMeta corrupt = meta;
    corrupt.set_global_label_weight(1, bad);
    EXPECT_NE(ErrorOf([&] {
                DecodeBatch(corrupt, raw, {2, 0, 1});
              }).find("global_label_weight"),
              std::string::npos);
  }
  // Feature sizes that do not match the bytes are refused.
  EXPECT_NE(ErrorOf([&] {
              DecodeBatch(meta, raw, {2, 1, 1});
            }).find("feature bytes"),
            std::string::npos);
}

TEST(LoaderWireTest, HeaderChecksRefuseBeforeTheBody) {
  loader::Hello hello;
  hello.set_token("t");
  const std::string frame = EncodeFrame(loader::HELLO, hello);
  EXPECT_EQ(Header(frame, 1024).type, loader::HELLO);

  std::string bad = frame;
  bad[0] = 'X';
  EXPECT_NE(ErrorOf([&] { Header(bad, 1024); }).find("bad magic"), std::string::npos);
  bad = frame;
  bad[4] = 9;
  EXPECT_NE(ErrorOf([&] { Header(bad, 1024); }).find("protocol version 9"), std::string::npos);
  bad = frame;
  bad[6] = 99;
  EXPECT_NE(ErrorOf([&] { Header(bad, 1024); }).find("unknown type 99"), std::string::npos);
  bad = frame;
  bad[8] = bad[9] = bad[10] = bad[11] = '\xff';  // 4 GiB body
  ErrorCode code;
  EXPECT_NE(ErrorOf([&] { Header(bad, 1024); }, &code).find("exceed the limit of 1024"),
            std::string::npos);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  bad = frame;
  bad[12] = 100;  // meta longer than the body
  EXPECT_NE(ErrorOf([&] { Header(bad, 1024); }).find("meta length"), std::string::npos);
}

TEST(LoaderWireTest, CorruptBodyFailsItsChecksum) {
  loader::Hello hello;
  hello.set_token("secret");
  std::string frame = EncodeFrame(loader::HELLO, hello);
  frame.back() ^= 1;
  const FrameHeader header = Header(frame, 1024);
  ErrorCode code;
  loader::Hello parsed;
  EXPECT_NE(ErrorOf([&] { ParseFrameBody(header, frame.substr(kFrameHeaderSize), &parsed); }, &code)
                .find("checksum"),
            std::string::npos);
  EXPECT_EQ(code, ErrorCode::kDataLoss);
}

TEST(LoaderWireTest, SplitHostPort) {
  std::string host, port;
  SplitHostPort("127.0.0.1:5000", "x", &host, &port);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, "5000");
  SplitHostPort("[::1]:0", "x", &host, &port);
  EXPECT_EQ(host, "::1");
  for (const char* bad : {"127.0.0.1", ":80", "h:", "h:99999", "h:8x"}) {
    EXPECT_NE(ErrorOf([&] { SplitHostPort(bad, "loader", &host, &port); }).find("loader: '"),
              std::string::npos)
        << bad;
  }
}

TEST(JobTokenTest, ReadsEnvironmentAndTrimmedFile) {
  config::ClusterConfig cluster;
  ::setenv("FLEXMOE_TEST_JOB_TOKEN", "abc123", 1);
  cluster.set_job_token_source("env:FLEXMOE_TEST_JOB_TOKEN");
  EXPECT_EQ(ReadJobToken(cluster), "abc123");
  ::unsetenv("FLEXMOE_TEST_JOB_TOKEN");
  EXPECT_NE(ErrorOf([&] { ReadJobToken(cluster); }).find("is not set"), std::string::npos);

  testing::TempDir dir;
  cluster.set_job_token_source("file:" + dir.Write("token", "  s3cret\n"));
  EXPECT_EQ(ReadJobToken(cluster), "s3cret");
  cluster.set_job_token_source("file:" + dir.Write("empty", "\n"));
  EXPECT_NE(ErrorOf([&] { ReadJobToken(cluster); }).find("is empty"), std::string::npos);
  ErrorCode code;
  cluster.set_job_token_source("file:" + dir.Path("missing"));
  EXPECT_NE(ErrorOf([&] { ReadJobToken(cluster); }, &code).find("cannot read"), std::string::npos);
  EXPECT_EQ(code, ErrorCode::kNotFound);
}

TEST(JobTokenTest, EmptySourceIsRefused) {
  config::ClusterConfig cluster;
  ErrorCode code;
  EXPECT_NE(ErrorOf([&] { ReadJobToken(cluster); }, &code)
                .find("a token source is required for the loader"),
            std::string::npos);
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  cluster.set_job_token_source("vault:x");
  EXPECT_NE(ErrorOf([&] { ReadJobToken(cluster); }).find("neither"), std::string::npos);
  EXPECT_TRUE(TokensEqual("abc", "abc"));
  EXPECT_FALSE(TokensEqual("abc", "abd"));
  EXPECT_FALSE(TokensEqual("abc", "ab"));
  EXPECT_FALSE(TokensEqual("", "a"));
}

TEST(JobTokenTest, TheTokenFileFollowsNoLinkAndIsPrivate) {
  testing::TempDir dir;
  const std::string victim = dir.Write("victim", "keep\n");
  const std::string token = dir.Path("job.token");
  // Links planted where the old writer staged (job.token.new) and at the token's own name.
  ASSERT_EQ(::symlink(victim.c_str(), (token + ".new").c_str()), 0);
  ASSERT_EQ(::symlink(victim.c_str(), token.c_str()), 0);
  const size_t open_before = testing::OpenDescriptors();
  WriteTokenFile(token, "0123abcd");
  EXPECT_EQ(testing::OpenDescriptors(), open_before);
  EXPECT_EQ(ReadTokenFile(token), "0123abcd");
  EXPECT_EQ(ReadTokenFile(victim), "keep");
  struct stat st {};
  ASSERT_EQ(::lstat(token.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Nothing staged is left behind; a second write replaces the first.
  WriteTokenFile(token, "ffff0000");
  EXPECT_EQ(ReadTokenFile(token), "ffff0000");
  size_t entries = 0;
  for (auto it = std::filesystem::directory_iterator(dir.path());
       it != std::filesystem::directory_iterator(); ++it) {
    ++entries;
  }
  EXPECT_EQ(entries, 3u);  // victim, job.token.new (the planted link), job.token
  // A directory that cannot be written is an error naming the token's staging file.
  EXPECT_THROW(WriteTokenFile(dir.Path("missing/job.token"), "x"), Error);
}

}  // namespace
}  // namespace flexmoe
