// The coordinator's named parts on their own, without sockets: the StallGuard (a look
// after the judge's own stall judges nobody), the MemberTable (world size
// from the first worker, ranks that do not fit and duplicates refused by name; a member
// whose connection closed is neither judged silent nor sent to) and the ReportRouter
// (only worker 0 opens, continues, flushes and reports checkpoints; a flush is answered once
// what came before it is written; records reach metrics.jsonl in worker 0's order).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>

#include "cluster/base/error.h"
#include "cluster/base/open_files.h"
#include "cluster/coord/latency_window.h"
#include "cluster/coord/member_table.h"
#include "cluster/coord/report_router.h"
#include "cluster/web/job_view.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

namespace co = coordinator;

co::Member Member(co::Role role, int rank) {
  co::Member m;
  m.set_role(role);
  m.set_rank(rank);
  m.set_host("h");
  m.set_pid(100 + rank);
  return m;
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(MemberTableTest, TheFirstWorkerSetsTheWorldAndRanksAreChecked) {
  MemberTable table;
  EXPECT_EQ(table.Add(Member(co::LOADER, 0), 0, nullptr), 0);
  EXPECT_EQ(table.world_size(), 0);
  EXPECT_EQ(table.Add(Member(co::WORKER, 1), 2, nullptr), 1);
  EXPECT_EQ(table.world_size(), 2);
  EXPECT_NE(ErrorOf([&] {
              table.Add(Member(co::WORKER, 2), 2, nullptr);
            }).find("rank 2 of world size 2, but the job has 2 workers"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { table.Add(Member(co::WORKER, 0), 3, nullptr); }).find("world size 3"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf([&] { table.Add(Member(co::WORKER, 1), 2, nullptr); }).find("registered already"),
      std::string::npos);
  EXPECT_EQ(table.Add(Member(co::WORKER, 0), 2, nullptr), 2);
  EXPECT_EQ(table.all().size(), 3u);
  table.at(1).left = true;
  EXPECT_EQ(table.workers_left(), 1);
}

TEST(MemberTableTest, MembersWithoutAConnectionAreNeitherJudgedNorSentTo) {
  MemberTable table;
  const int a = table.Add(Member(co::WORKER, 0), 2, nullptr);
  const int b = table.Add(Member(co::WORKER, 1), 2, nullptr);
  const auto old = MemberTable::Clock::now() - std::chrono::seconds(10);
  table.at(a).last_heard = old;
  table.at(b).last_heard = old;
  double silent = 0;
  EXPECT_EQ(table.FirstSilent(4, &silent), -1);  // no connection: closed, judged elsewhere
  // Sends go nowhere without connections either.
  EXPECT_EQ(table.Send("frame", [](const co::Member&) { return true; }), 0);
}

// The silence judge skips the look that follows its own stall: the first look after a gap
// of more than max_gap_s re-arms, the next one judges again.
TEST(StallGuardTest, ALookAfterTheJudgesOwnStallJudgesNobody) {
  using Clock = StallGuard::Clock;
  StallGuard guard(2.0);
  const Clock::time_point t0 = Clock::now();
  EXPECT_TRUE(guard.Steady(t0));  // the first look
  EXPECT_TRUE(guard.Steady(t0 + std::chrono::milliseconds(250)));
  EXPECT_TRUE(guard.Steady(t0 + std::chrono::milliseconds(2250)));   // exactly 2 s later
  EXPECT_FALSE(guard.Steady(t0 + std::chrono::milliseconds(6000)));  // stalled 3.75 s
  EXPECT_NEAR(guard.last_gap_s(), 3.75, 1e-9);
  EXPECT_TRUE(guard.Steady(t0 + std::chrono::milliseconds(6250)));
}

TEST(LatencyWindowTest, QuantilesAndTheLargestOfTheLastMinute) {
  LatencyWindow window;
  const auto t0 = LatencyWindow::Clock::now();
  for (int i = 0; i < 98; ++i) window.Add(0.001, t0);
  window.Add(0.5, t0);
  window.Add(2.0, t0);
  LatencyFigures f = window.Figures(t0);
  EXPECT_EQ(f.count, 100);
  EXPECT_DOUBLE_EQ(f.max, 2.0);
  EXPECT_NEAR(f.sum, 0.098 + 2.5, 1e-9);
  // A bucket's upper edge: at most 7.5% above the sample.
  EXPECT_GE(f.p50, 0.001);
  EXPECT_LE(f.p50, 0.001075);
  EXPECT_GE(f.p99, 0.5);
  EXPECT_LE(f.p99, 0.5375);
  // A minute later the samples have aged out.
  f = window.Figures(t0 + std::chrono::seconds(61));
  EXPECT_EQ(f.count, 0);
  EXPECT_EQ(f.max, 0);
  window.Add(0.02, t0 + std::chrono::seconds(61));
  EXPECT_EQ(window.Figures(t0 + std::chrono::seconds(62)).count, 1);
}

// The coordinator raises its open-file limit for a socket per member, and says which limit
// to raise when the hard one is too low.
TEST(OpenFilesTest, RaisesTheSoftLimitAndNamesTheHardOne) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  const long hard = saved.rlim_max == RLIM_INFINITY ? 1 << 20 : static_cast<long>(saved.rlim_max);
  EXPECT_GE(EnsureOpenFiles(std::min(hard, 1000L), "the coordinator"), std::min(hard, 1000L));
  if (saved.rlim_max != RLIM_INFINITY) {
    const std::string error = ErrorOf([&] { EnsureOpenFiles(hard + 1, "the coordinator"); });
    EXPECT_NE(error.find("the coordinator needs " + std::to_string(hard + 1) + " open files"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find("ulimit -Hn"), std::string::npos) << error;
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
}

TEST(ReportRouterTest, OnlyWorkerZeroSteersAndFlushesComeBackInOrder) {
  testing::TempDir dir;
  JobView view(4, 0, 64);
  std::mutex mutex;
  std::condition_variable flushed_changed;
  std::vector<int64_t> flushed;
  ReportRouter router(
      dir.path(), false, 64, &view,
      [&](int64_t n) {
        std::lock_guard<std::mutex> lock(mutex);
        flushed.push_back(n);
        flushed_changed.notify_all();
      },
      [](const std::string& why) { ADD_FAILURE() << why; });
  co::Report open;
  open.set_open("");
  EXPECT_NE(ErrorOf([&] { router.Take(0, open); }).find("only workers report"), std::string::npos);
  router.Start(2);
  EXPECT_NE(ErrorOf([&] { router.Take(1, open); }).find("only worker 0"), std::string::npos);
  co::Report bad_open;
  bad_open.set_open("../elsewhere");
  EXPECT_NE(ErrorOf([&] { router.Take(0, bad_open); }).find("not a seed directory"),
            std::string::npos);
  router.Take(0, open);
  co::Report flush;
  flush.set_flush(7);
  EXPECT_NE(ErrorOf([&] { router.Take(1, flush); }).find("only worker 0 flushes"),
            std::string::npos);
  co::Report record;
  record.set_record(R"({"event":"epoch","epoch":0,"seed":1})");
  router.Take(0, record);
  router.Take(0, flush);
  {
    // The flush is answered once the record before it is written (on the writer's thread).
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(
        flushed_changed.wait_for(lock, std::chrono::seconds(10), [&] { return !flushed.empty(); }));
    EXPECT_EQ(flushed, (std::vector<int64_t>{7}));
  }
  std::ifstream in(dir.Path("metrics.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_NE(line.find("\"epoch\""), std::string::npos) << line;
  co::Report checkpoint;
  checkpoint.set_checkpoint(dir.Path("checkpoints/step-00000010"));
  EXPECT_TRUE(router.Take(0, checkpoint).checkpoint);
  EXPECT_EQ(router.newest_checkpoint(), dir.Path("checkpoints/step-00000010"));
  co::Report not_json;
  not_json.set_record("{");
  EXPECT_NE(ErrorOf([&] { router.Take(1, not_json); }).find("not JSON"), std::string::npos);
}

// A run directory the metrics cannot be written into: the writer says why once, off the
// caller's thread, and confirms no flush after it.
TEST(ReportRouterTest, AMetricsWriteThatFailsIsToldAndConfirmsNothing) {
  testing::TempDir dir;
  dir.Write("blocked", "a file where the run directory should be");
  JobView view(4, 0, 64);
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<int64_t> flushed;
  std::vector<std::string> failures;
  {
    ReportRouter router(
        dir.Path("blocked"), false, 64, &view,
        [&](int64_t n) {
          std::lock_guard<std::mutex> lock(mutex);
          flushed.push_back(n);
        },
        [&](const std::string& why) {
          std::lock_guard<std::mutex> lock(mutex);
          failures.push_back(why);
          changed.notify_all();
        });
    router.Start(1);
    co::Report open;
    open.set_open("");
    router.Take(0, open);
    co::Report record;
    record.set_record(R"({"event":"epoch","epoch":0,"seed":1})");
    router.Take(0, record);
    co::Report flush;
    flush.set_flush(3);
    router.Take(0, flush);
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(
        changed.wait_for(lock, std::chrono::seconds(10), [&] { return !failures.empty(); }));
  }  // the writer is joined here: everything queued has been seen
  EXPECT_EQ(failures.size(), 1u);
  EXPECT_TRUE(flushed.empty()) << "a flush was confirmed after the metrics failed";
}

}  // namespace
}  // namespace flexmoe
