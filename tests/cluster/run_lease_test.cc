// The run directory's lease (cluster/base/run_lease.h) and the node-local loader choice
// (cluster/net/local_host.h), in one process: a second holder is refused naming the first, a
// stale lease (not renewed, or its holder on this host gone) is taken over and said, a lease
// is renewed while held and removed when released, a lease taken over is reported lost.
#include "cluster/base/run_lease.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/host_name.h"
#include "cluster/net/local_host.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

RunLease::Options Options(const std::string& dir, double timeout_s = 4) {
  RunLease::Options o;
  o.run_dir = dir;
  o.timeout_s = timeout_s;
  o.what = "test";
  return o;
}

TEST(RunLeaseTest, SecondHolderIsRefusedNamingTheFirst) {
  testing::TempDir dir;
  RunLease first(Options(dir.path()));
  try {
    RunLease second(Options(dir.path()));
    FAIL() << "a second lease was granted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);  // exit 2
    EXPECT_NE(std::string(e.what()).find("in use by a running job (host " + HostName() + ", pid " +
                                         std::to_string(::getpid()) + " (test)"),
              std::string::npos)
        << e.what();
  }
}

TEST(RunLeaseTest, ReleasedLeaseIsRemovedAndCanBeTakenAgain) {
  testing::TempDir dir;
  { RunLease lease(Options(dir.path())); }
  EXPECT_FALSE(std::filesystem::exists(LeasePath(dir.path())));
  std::string taken;
  RunLease again(Options(dir.path()), &taken);
  EXPECT_EQ(taken, "");
}

TEST(RunLeaseTest, LeaseIsRenewedWhileHeld) {
  testing::TempDir dir;
  RunLease lease(Options(dir.path(), /*timeout_s=*/0.4));
  const double first = ParseLease(ReadFile(LeasePath(dir.path())), "lease").renewed_unix_s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  double now = first;
  while (now == first && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    now = ParseLease(ReadFile(LeasePath(dir.path())), "lease").renewed_unix_s;
  }
  EXPECT_GT(now, first);
}

TEST(RunLeaseTest, StaleLeasesAreTakenOverAndSaid) {
  testing::TempDir dir;
  // Not renewed for longer than the timeout, on another host.
  LeaseHolder old{"elsewhere", 42, NowUnix() - 60, "a lost job"};
  WriteFileAtomically(LeasePath(dir.path()), FormatLease(old));
  std::string taken;
  {
    RunLease lease(Options(dir.path()), &taken);
    EXPECT_NE(taken.find("from host elsewhere, pid 42 (a lost job): not renewed for 6"),
              std::string::npos)
        << taken;
  }
  // Renewed just now, but by a process of this host that has ended.
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  WriteFileAtomically(LeasePath(dir.path()), FormatLease({HostName(), gone, NowUnix(), "x"}));
  RunLease lease(Options(dir.path()), &taken);
  EXPECT_NE(taken.find("its process has ended"), std::string::npos) << taken;
}

TEST(RunLeaseTest, ALeaseTakenOverIsReportedLost) {
  testing::TempDir dir;
  std::atomic<bool> lost{false};
  RunLease::Options o = Options(dir.path(), /*timeout_s=*/0.2);
  o.on_lost = [&lost](const LeaseHolder& by) { lost = by.host == "thief"; };
  RunLease lease(o);
  WriteFileAtomically(LeasePath(dir.path()), FormatLease({"thief", 7, NowUnix(), ""}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!lost && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(lost);
  EXPECT_EQ(ParseLease(ReadFile(LeasePath(dir.path())), "lease").host, "thief");
}

TEST(RunLeaseTest, GarbageIsRefusedNamingTheFile) {
  try {
    ParseLease("host a\npid x\n", "/r/job.lease");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("/r/job.lease:2"), std::string::npos) << e.what();
  }
}

TEST(LocalHostTest, PicksTheLoaderOnThisHost) {
  EXPECT_TRUE(IsLocalHost(HostName()));
  EXPECT_TRUE(IsLocalHost("localhost"));
  EXPECT_TRUE(IsLocalHost("127.0.0.1"));
  EXPECT_FALSE(IsLocalHost("203.0.113.71"));  // TEST-NET-3: not this machine
  const std::vector<std::string> loaders = {"203.0.113.71:5000", "127.0.0.1:6000",
                                            "203.0.113.72:5000"};
  for (int worker = 0; worker < 4; ++worker) {
    EXPECT_EQ(PickNodeLocalAddress(loaders, worker), "127.0.0.1:6000");
  }
  // No loader here: spread by worker index.
  const std::vector<std::string> remote = {"203.0.113.71:5000", "203.0.113.72:5000"};
  EXPECT_EQ(PickNodeLocalAddress(remote, 0), remote[0]);
  EXPECT_EQ(PickNodeLocalAddress(remote, 3), remote[1]);
}

}  // namespace
}  // namespace flexmoe
