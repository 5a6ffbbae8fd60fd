// The loader server and client over loopback TCP: batch-for-batch equality with the
// in-process plan, resume after dropped connections, refusal of bad frames and tokens
// while others are served, credit flow control and bounded server memory, and the
// worker's error when the loader is unreachable or killed (a `flexmoe loader` process).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>

#include "cluster/base/error.h"
#include "data_loader/folds.h"
#include "data_loader/loader_client.h"
#include "data_loader/loader_wire.h"
#include "data_loader/plan_batch_source.h"
#include "proto/config_loader.h"
#include "tests/data_loader/loader_test_util.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

using config::TrainingConfig;
using testing::ServerThread;
using testing::TestDataset;
using Clock = std::chrono::steady_clock;

constexpr char kToken[] = "t0k3n-for-tests";

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class LoaderStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir;
    dataset_ = new TestDataset(dir_->Path("small"), 400, {24, 12, 6});
  }
  static void TearDownTestSuite() {
    delete dataset_;
    delete dir_;
  }

  static LoaderServerOptions ServerOptions() {
    LoaderServerOptions o;
    o.token = kToken;
    o.handshake_timeout_s = 5;
    o.write_timeout_s = 10;
    return o;
  }
  static PlanOptions Plan(int world, TrainingConfig::Batching batching = TrainingConfig::MIXED,
                          TrainingConfig::Remainder remainder = TrainingConfig::KEEP) {
    PlanOptions o;
    o.seed = 5;
    o.world_size = world;
    o.global_batch = 8;
    o.remainder = remainder;
    o.batching = batching;
    o.num_modalities = 3;
    return o;
  }
  static LoaderClientOptions Client(const std::string& address, int worker, const PlanOptions& plan,
                                    int prefetch = 4) {
    LoaderClientOptions o;
    o.address = address;
    o.token = kToken;
    o.name = "test worker " + std::to_string(worker);
    o.plan = plan;
    o.warmup_epochs = 2;
    o.worker = worker;
    o.prefetch = prefetch;
    o.connect_timeout_s = 5;
    o.read_timeout_s = 5;
    return o;
  }
  static PlanBatchSource Local(int worker, const PlanOptions& plan) {
    return PlanBatchSource(*dataset_->data, dataset_->prepared, 0, plan, 2, worker);
  }

  static testing::TempDir* dir_;
  static TestDataset* dataset_;
};

testing::TempDir* LoaderStreamTest::dir_ = nullptr;
TestDataset* LoaderStreamTest::dataset_ = nullptr;

// One frame read from a raw socket; type FRAME_UNKNOWN when none came in time.
struct RawFrame {
  FrameHeader header;
  std::string body;
  loader::FrameType type() const { return header.type; }
};

RawFrame ReadFrame(int fd, double timeout_s) {
  std::string header_bytes;
  RawFrame frame;
  if (!testing::ReadExactly(fd, kFrameHeaderSize, &header_bytes, timeout_s)) return frame;
  uint8_t bytes[kFrameHeaderSize];
  std::memcpy(bytes, header_bytes.data(), kFrameHeaderSize);
  const FrameHeader header = ParseFrameHeader(bytes, 64u << 20);
  if (!testing::ReadExactly(fd, header.length, &frame.body, timeout_s)) return frame;
  frame.header = header;
  return frame;
}

loader::StreamRequest Request(uint64_t stream, int world, int batch, uint32_t credits) {
  loader::StreamRequest r;
  r.set_stream_id(stream);
  r.set_split(0);
  r.set_epoch(2);
  r.set_seed(5);
  r.set_global_batch(batch);
  r.set_worker(0);
  r.set_world_size(world);
  r.set_first_step(0);
  r.set_credits(credits);
  return r;
}

std::string Hello(const std::string& token) {
  loader::Hello hello;
  hello.set_token(token);
  return EncodeFrame(loader::HELLO, hello);
}

TEST_F(LoaderStreamTest, EpochOverTcpIsIdenticalToTheInProcessPlan) {
  ServerThread server(*dataset_, ServerOptions());
  const std::pair<TrainingConfig::Batching, TrainingConfig::Remainder> cases[] = {
      {TrainingConfig::MIXED, TrainingConfig::KEEP},
      {TrainingConfig::MIXED, TrainingConfig::PAD},
      {TrainingConfig::BY_COMBINATION, TrainingConfig::DROP}};
  for (const auto& [batching, remainder] : cases) {
    const PlanOptions plan = Plan(3, batching, remainder);
    std::vector<std::future<std::string>> workers;
    for (int w = 0; w < 3; ++w) {
      workers.push_back(std::async(std::launch::async, [&, w] {
        LoaderClient client(Client(server.address(), w, plan));
        PlanBatchSource local = Local(w, plan);
        for (int epoch : {0, 2, 3}) {  // warm-up, then shuffled
          std::string diff = testing::DiffEpochs(&local, &client, epoch);
          if (!diff.empty())
            return "worker " + std::to_string(w) + " epoch " + std::to_string(epoch) + ": " + diff;
        }
        return std::string();
      }));
    }
    for (auto& worker : workers) {
      ASSERT_EQ(worker.wait_for(std::chrono::seconds(60)), std::future_status::ready);
      EXPECT_EQ(worker.get(), "") << "batching " << batching << " remainder " << remainder;
    }
  }
  const LoaderServerStats stats = server.server().stats();
  EXPECT_EQ(stats.connections_refused, 0);
  EXPECT_GE(stats.streams_started, 27);
  EXPECT_GT(stats.batches_sent, 27 * 10);
}

// training.cross_fit through a loader: the stream of a fold's training and validation
// splits is the in-process plan over the same fold's data, and differs from the prepared
// splits' stream.
TEST_F(LoaderStreamTest, ACrossFittingFoldOverTcpIsTheInProcessFoldPlan) {
  ServerThread server(*dataset_, ServerOptions());
  const FoldOfData fold{5, 2, 7};
  const PreparedDataset member = WithFoldAsValidation(dataset_->prepared, fold);
  for (uint32_t split : {0u, 1u}) {
    const PlanOptions plan = split == 0 ? Plan(1) : EvaluationPlanOptions(1, 3);
    LoaderClientOptions options = Client(server.address(), 0, plan);
    options.split = split;
    options.fold = fold;
    LoaderClient client(options);
    PlanBatchSource local(*dataset_->data, member, split, plan, 2, 0);
    for (int epoch : {0, 2}) {
      EXPECT_EQ(testing::DiffEpochs(&local, &client, epoch), "") << "split " << split;
    }
    PlanBatchSource unfolded(*dataset_->data, dataset_->prepared, split, plan, 2, 0);
    EXPECT_NE(testing::DiffEpochs(&unfolded, &client, 2), "") << "split " << split;
  }
  // A fold that cannot be: that client is refused, naming it, and the loader serves on.
  LoaderClientOptions bad = Client(server.address(), 0, Plan(1));
  bad.fold = FoldOfData{5, 5, 7};
  LoaderClient refused(bad);
  DecodedBatch batch;
  try {
    refused.StartEpoch(0, 0);
    refused.Next(&batch);
    ADD_FAILURE() << "fold 5 of 5 was served";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fold 5 of 5"), std::string::npos) << e.what();
  }
  LoaderClient good(Client(server.address(), 0, Plan(1)));
  PlanBatchSource local = Local(0, Plan(1));
  EXPECT_EQ(testing::DiffEpochs(&local, &good, 2), "");
}

// Every worker's slice carries the whole global batch's loss weight per label (the loss
// denominator without a collective): the same on every worker, the padding repeats at 0.
TEST_F(LoaderStreamTest, SlicesCarryTheGlobalBatchLabelWeights) {
  const PlanOptions plan = Plan(3, TrainingConfig::MIXED, TrainingConfig::PAD);
  std::vector<PlanBatchSource> sources;
  for (int w = 0; w < 3; ++w) sources.push_back(Local(w, plan));
  for (auto& s : sources) s.StartEpoch(2, 0);
  DecodedBatch batch;
  for (int64_t step = 0; step < sources[0].steps_in_epoch(); ++step) {
    std::vector<double> expected;
    std::vector<std::vector<double>> seen;
    for (auto& s : sources) {
      ASSERT_TRUE(s.Next(&batch));
      for (int i = 0; i < batch.size; ++i) {
        const auto label = static_cast<size_t>(batch.label[i]);
        if (label >= expected.size()) expected.resize(label + 1, 0.0);
        expected[label] += batch.weight[i];
      }
      seen.push_back(batch.global_label_weight);
    }
    for (size_t w = 0; w < seen.size(); ++w) {
      // Trailing labels with weight 0 only (padding) may be listed; compare the sums.
      std::vector<double> got = seen[w];
      got.resize(std::max(got.size(), expected.size()), 0.0);
      std::vector<double> want = expected;
      want.resize(got.size(), 0.0);
      EXPECT_EQ(got, want) << "step " << step << " worker " << w;
    }
  }
}

TEST_F(LoaderStreamTest, ResumesAtTheSameStepAfterDroppedConnections) {
  ServerThread server(*dataset_, ServerOptions());
  const PlanOptions plan = Plan(2);
  LoaderClient client(Client(server.address(), 1, plan, /*prefetch=*/2));
  PlanBatchSource local = Local(1, plan);
  client.StartEpoch(3, 0);
  local.StartEpoch(3, 0);
  ASSERT_EQ(client.steps_in_epoch(), local.steps_in_epoch());
  ASSERT_GT(local.steps_in_epoch(), 12);
  DecodedBatch a, b;
  for (int64_t step = 0;; ++step) {
    if (step == 4 || step == 9) {
      const int64_t before = client.reconnects();
      server.server().DropConnectionsForTest();
      // The client's thread has noticed the drop and connected again before it reads on.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (client.reconnects() == before) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no reconnect at step " << step;
        std::this_thread::yield();
      }
    }
    const bool more = local.Next(&a);
    ASSERT_EQ(client.Next(&b), more) << "step " << step;
    if (!more) break;
    ASSERT_EQ(testing::DiffBatches(a, b), "") << "step " << step;
  }
  EXPECT_GE(client.reconnects(), 2);
  // Starting mid-epoch gives the same steps as the in-process source.
  EXPECT_EQ(testing::DiffEpochs(&local, &client, 3, 7), "");
  EXPECT_EQ(testing::DiffEpochs(&local, &client, 4, local.steps_in_epoch()), "");
}

// Sends `bytes` on a new connection to `address` and expects the server to close it.
void ExpectClosedAfter(const std::string& address, const std::string& bytes) {
  int fd = testing::ConnectTcp(address);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::SendAll(fd, bytes));
  EXPECT_TRUE(testing::WaitForClose(fd, 5));
  ::close(fd);
}

TEST_F(LoaderStreamTest, RefusesMalformedOversizeAndWrongTokenWhileServingOthers) {
  LoaderServerOptions options = ServerOptions();
  options.max_frame_bytes = 1 << 20;
  ServerThread server(*dataset_, options);
  const PlanOptions plan = Plan(1);
  LoaderClient good(Client(server.address(), 0, plan, /*prefetch=*/2));
  PlanBatchSource local = Local(0, plan);
  good.StartEpoch(2, 0);
  local.StartEpoch(2, 0);
  DecodedBatch a, b;
  auto consume = [&](int n) {
    for (int i = 0; i < n && local.Next(&a); ++i) {
      ASSERT_TRUE(good.Next(&b));
      ASSERT_EQ(testing::DiffBatches(a, b), "");
    }
  };
  consume(3);

  // Garbage instead of a header.
  ExpectClosedAfter(server.address(), std::string(kFrameHeaderSize, 'x'));
  consume(2);
  {  // A HELLO header announcing ~4 GiB: refused before anything is allocated.
    const size_t rss_before = testing::ResidentBytes();
    std::string frame = Hello(kToken).substr(0, kFrameHeaderSize);
    frame[8] = frame[9] = frame[10] = '\0';
    frame[11] = '\xf0';
    ExpectClosedAfter(server.address(), frame);
    EXPECT_LT(testing::ResidentBytes(), rss_before + (64u << 20));
  }
  {  // A body that fails its checksum.
    std::string frame = Hello(kToken);
    frame.back() ^= 0x5a;
    ExpectClosedAfter(server.address(), frame);
  }
  {  // A REQUEST before the HELLO.
    int fd = testing::ConnectTcp(server.address());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::SendAll(fd, EncodeFrame(loader::REQUEST, Request(1, 1, 8, 1))));
    EXPECT_EQ(ReadFrame(fd, 5).type(), loader::ERROR_REPLY);
    EXPECT_TRUE(testing::WaitForClose(fd, 5));
    ::close(fd);
  }
  consume(2);
  {  // A wrong token: the client fails at once with the loader's reason.
    LoaderClientOptions bad = Client(server.address(), 0, plan);
    bad.token = "not-the-token";
    LoaderClient client(bad);
    const auto start = Clock::now();
    try {
      client.StartEpoch(2, 0);
      ADD_FAILURE() << "a wrong token was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
      EXPECT_NE(std::string(e.what()).find("wrong job token"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(server.address()), std::string::npos) << e.what();
    }
    EXPECT_LT(SecondsSince(start), 3);
  }
  // The good client's stream was never disturbed.
  for (;;) {
    const bool more = local.Next(&a);
    ASSERT_EQ(good.Next(&b), more);
    if (!more) break;
    ASSERT_EQ(testing::DiffBatches(a, b), "");
  }
  const LoaderServerStats stats = server.server().stats();
  EXPECT_EQ(stats.connections_refused, 5);
  EXPECT_EQ(stats.connections_open, 1);
}

TEST_F(LoaderStreamTest, CreditsBoundTheBatchesSent) {
  ServerThread server(*dataset_, ServerOptions());
  int fd = testing::ConnectTcp(server.address());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::SendAll(fd, Hello(kToken)));
  ASSERT_TRUE(testing::SendAll(fd, EncodeFrame(loader::REQUEST, Request(9, 1, 8, 3))));
  EXPECT_EQ(ReadFrame(fd, 5).type(), loader::WELCOME);
  ASSERT_EQ(ReadFrame(fd, 5).type(), loader::STREAM_INFO);
  auto expect_batches = [&](int64_t first, int count) {
    for (int i = 0; i < count; ++i) {
      const RawFrame frame = ReadFrame(fd, 5);
      ASSERT_EQ(frame.type(), loader::BATCH);
      loader::BatchMeta meta;
      ParseFrameBody(frame.header, frame.body, &meta);
      EXPECT_EQ(meta.step(), first + i);
      EXPECT_EQ(meta.stream_id(), 9u);
    }
    std::string extra;
    EXPECT_FALSE(testing::ReadExactly(fd, 1, &extra, 0.3)) << "a batch beyond the credits";
  };
  expect_batches(0, 3);
  loader::Credit credit;
  credit.set_stream_id(9);
  credit.set_batches(2);
  ASSERT_TRUE(testing::SendAll(fd, EncodeFrame(loader::CREDIT, credit)));
  expect_batches(3, 2);
  // A credit for another stream is ignored.
  credit.set_stream_id(8);
  ASSERT_TRUE(testing::SendAll(fd, EncodeFrame(loader::CREDIT, credit)));
  expect_batches(5, 0);
  ::close(fd);
  EXPECT_EQ(server.server().stats().batches_sent, 5);
}

TEST_F(LoaderStreamTest, UnreachableLoaderFailsWithinTheDeadlineNamingIt) {
  // A port that nothing listens on.
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(probe);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  LoaderClientOptions options = Client(address, 0, Plan(1));
  options.connect_timeout_s = 1;
  LoaderClient client(options);
  const auto start = Clock::now();
  try {
    client.StartEpoch(0, 0);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
    EXPECT_NE(std::string(e.what()).find("loader " + address + " unreachable"), std::string::npos)
        << e.what();
  }
  const double elapsed = SecondsSince(start);
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LT(elapsed, 2.5);
  // The error stays: the next call reports it at once.
  EXPECT_THROW(client.StartEpoch(1, 0), Error);
}

TEST_F(LoaderStreamTest, SeveralLoadersPerJobFromTheConfig) {
  config::Config config = ParseConfig(dataset_->config_text, "c.textproto", {});
  ::setenv("FLEXMOE_LOADER_TEST_TOKEN", kToken, 1);
  config.mutable_cluster()->set_job_token_source("env:FLEXMOE_LOADER_TEST_TOKEN");
  config.mutable_cluster()->add_loader_addresses("127.0.0.1:7001");
  config.mutable_cluster()->add_loader_addresses("127.0.0.1:7002");
  config.mutable_training()->set_batching(TrainingConfig::BY_COMBINATION);
  const LoaderClientOptions w2 = LoaderClientOptionsFromConfig(config, 0, 2, 3);
  EXPECT_EQ(w2.address, "127.0.0.1:7001");
  EXPECT_EQ(LoaderClientOptionsFromConfig(config, 0, 1, 3).address, "127.0.0.1:7002");
  EXPECT_EQ(w2.token, kToken);
  EXPECT_EQ(w2.plan.world_size, 3);
  EXPECT_EQ(w2.plan.global_batch, config.training().batch_size());
  EXPECT_EQ(w2.plan.batching, TrainingConfig::BY_COMBINATION);
  EXPECT_EQ(w2.plan.num_modalities, 3);
  EXPECT_EQ(w2.warmup_epochs, config.training().warmup_epochs());
  config.mutable_cluster()->clear_loader_addresses();
  EXPECT_THROW(LoaderClientOptionsFromConfig(config, 0, 0, 1), Error);
  ::unsetenv("FLEXMOE_LOADER_TEST_TOKEN");
}

// A consumer that asks for everything and then stops reading: the server stalls with at
// most one batch frame queued, however long the epoch is.
TEST(LoaderMemoryTest, StalledConsumerDoesNotGrowTheServer) {
  testing::TempDir dir;
  TestDataset dataset(dir.Path("wide"), 900, {4096, 2048});
  LoaderServerOptions options;
  options.token = kToken;
  ServerThread server(dataset, options);
  const int batch = 16;
  int fd = testing::ConnectTcp(server.address(), /*receive_buffer=*/4096);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::SendAll(fd, Hello(kToken)));
  ASSERT_TRUE(testing::SendAll(fd, EncodeFrame(loader::REQUEST, Request(1, 1, batch, 100000))));
  // Wait until the server stops making progress.
  int64_t last = -1;
  int stable = 0;
  for (int i = 0; i < 150 && stable < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int64_t sent = server.server().stats().batches_sent;
    stable = sent == last ? stable + 1 : 0;
    last = sent;
  }
  const LoaderServerStats stats = server.server().stats();
  PlanOptions plan;
  plan.seed = 5;
  plan.epoch = 2;
  plan.phase = EpochPhase::kShuffled;
  plan.global_batch = batch;
  const int64_t steps = PlanEpoch(dataset.prepared, 0, plan).steps();
  const size_t frame_bound = batch * (4096 + 2048) * sizeof(float) + 4096;
  std::printf("stalled consumer: %lld of %lld batches sent, %llu bytes; queued %llu, peak %llu\n",
              static_cast<long long>(stats.batches_sent), static_cast<long long>(steps),
              static_cast<unsigned long long>(stats.bytes_sent),
              static_cast<unsigned long long>(stats.queued_bytes),
              static_cast<unsigned long long>(stats.peak_queued_bytes));
  EXPECT_EQ(stable, 10) << "the server kept sending";
  EXPECT_LT(stats.batches_sent, steps) << "the epoch fit in the socket buffers; enlarge it";
  EXPECT_LE(stats.queued_bytes, frame_bound);
  EXPECT_LE(stats.peak_queued_bytes, frame_bound);
  ::close(fd);
}

// `flexmoe loader` as its own process: batches equal to the in-process plan; killed
// mid-epoch, the worker gets the error naming it within connect_timeout_s.
TEST_F(LoaderStreamTest, KilledLoaderProcessFailsTheWorkerWithinItsDeadline) {
  const std::string token_file = dir_->Write("token", std::string(kToken) + "\n");
  const std::string config_path =
      dir_->Write("loader.textproto", dataset_->config_text +
                                          " training { seed: 5 batch_size: 8 "
                                          "warmup_epochs: 2 } cluster { "
                                          "job_token_source: \"file:" +
                                          token_file + "\" connect_timeout_s: 2 }");
  testing::ChildProcess loader(
      {FLEXMOE_BINARY, "loader", "--config", config_path, "--listen", "127.0.0.1:0"});
  const std::string line = loader.ReadLine(60);
  ASSERT_EQ(line.rfind("listening on 127.0.0.1:", 0), 0u) << "got '" << line << "'";
  const std::string address = line.substr(std::strlen("listening on "));

  config::Config config = LoadConfig(config_path, {});
  config.mutable_cluster()->add_loader_addresses(address);
  LoaderClientOptions options = LoaderClientOptionsFromConfig(config, 0, 1, 2);
  options.prefetch = 2;
  LoaderClient client(options);
  PlanBatchSource local(*dataset_->data, dataset_->prepared, 0, PlanOptionsFromConfig(config, 2),
                        config.training().warmup_epochs(), 1);
  client.StartEpoch(2, 0);
  local.StartEpoch(2, 0);
  ASSERT_GT(client.steps_in_epoch(), 10);
  DecodedBatch a, b;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(local.Next(&a));
    ASSERT_TRUE(client.Next(&b));
    ASSERT_EQ(testing::DiffBatches(a, b), "") << "step " << i;
  }
  loader.Kill();
  const auto killed = Clock::now();
  bool failed = false;
  for (int i = 0; i < 100 && !failed; ++i) {
    try {
      ASSERT_TRUE(client.Next(&b)) << "the epoch ended although the loader is dead";
    } catch (const Error& e) {
      failed = true;
      EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
      EXPECT_NE(std::string(e.what()).find("loader " + address), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(failed);
  EXPECT_LT(SecondsSince(killed), 2 + 1.5);
}

TEST_F(LoaderStreamTest, LoaderCommandNeedsATokenSource) {
  const std::string config_path = dir_->Write("no_token.textproto", dataset_->config_text);
  testing::CommandResult r =
      testing::RunCommand({FLEXMOE_BINARY, "loader", "--config", config_path}, 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("a token source is required for the loader"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace flexmoe
