// The run directory's lease (cluster/base/run_lease.h) and the node-local loader choice
// (cluster/net/local_host.h), in one process: a second holder is refused naming the first, a
// live holder elsewhere is refused and a still one taken over (judged by its counter on the
// contender's own clock), a hand-written lease or one whose holder on this host is gone is
// taken over and said, a lease is renewed while held (never rewritten) and removed when
// released, a lease taken over is reported lost and never overwritten by a late renewal.
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

TEST(RunLeaseTest, LeaseIsRenewedWhileHeldAndNeverRewritten) {
  testing::TempDir dir;
  RunLease lease(Options(dir.path(), /*timeout_s=*/0.4));
  const std::string text = ReadFile(LeasePath(dir.path()));
  const std::string beat = LeaseBeatPath(dir.path(), ParseLease(text, "lease"));
  const std::string first = ReadFile(beat);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string now = first;
  while (now == first && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    now = ReadFile(beat);
  }
  EXPECT_NE(now, first);
  EXPECT_EQ(ReadFile(LeasePath(dir.path())), text);  // renewals go to the beat file only
}

// A holder on another host (a thread writing its beat file): judged by whether its counter
// moves on this process's monotonic clock, whatever its wall clock says.
TEST(RunLeaseTest, ALiveRemoteHolderIsRefusedAndAStillOneTakenOver) {
  testing::TempDir dir;
  const LeaseHolder remote{"elsewhere", 42, "a remote job", "00ff00ff00ff00ff"};
  WriteFileAtomically(LeasePath(dir.path()), FormatLease(remote));
  const std::string beat = LeaseBeatPath(dir.path(), remote);
  std::atomic<bool> beating{true};
  std::thread holder([&] {
    for (int n = 0; beating; ++n) {
      WriteFileAtomically(beat, "renewals " + std::to_string(n) + "\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  try {
    RunLease second(Options(dir.path(), /*timeout_s=*/0.4));
    ADD_FAILURE() << "a live lease was taken over";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("in use by a running job (host elsewhere, pid 42"),
              std::string::npos)
        << e.what();
  }
  beating = false;
  holder.join();
  std::string taken;
  RunLease lease(Options(dir.path(), /*timeout_s=*/0.4), &taken);
  EXPECT_NE(taken.find("from host elsewhere, pid 42 (a remote job): not renewed for 0."),
            std::string::npos)
      << taken;
  EXPECT_NE(taken.find("counter stood still"), std::string::npos) << taken;
  EXPECT_FALSE(std::filesystem::exists(beat));
}

TEST(RunLeaseTest, StaleLeasesAreTakenOverAndSaid) {
  testing::TempDir dir;
  // Written by hand (or by an older flexmoe): no beat file, so nothing ever moves.
  WriteFileAtomically(LeasePath(dir.path()),
                      "host elsewhere\npid 42\nrenewed_unix_s 1.5\nwhat a lost job\n");
  std::string taken;
  {
    RunLease lease(Options(dir.path(), /*timeout_s=*/0.4), &taken);
    EXPECT_NE(taken.find("from host elsewhere, pid 42 (a lost job): not renewed for 0."),
              std::string::npos)
        << taken;
  }
  // A process of this host that has ended: taken over at once.
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  WriteFileAtomically(LeasePath(dir.path()), FormatLease({HostName(), gone, "x", "0123"}));
  const auto start = std::chrono::steady_clock::now();
  RunLease lease(Options(dir.path()), &taken);
  EXPECT_NE(taken.find("its process has ended"), std::string::npos) << taken;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(RunLeaseTest, ALeaseTakenOverIsReportedLost) {
  testing::TempDir dir;
  std::atomic<bool> lost{false};
  RunLease::Options o = Options(dir.path(), /*timeout_s=*/0.2);
  o.on_lost = [&lost](const LeaseHolder& by) { lost = by.host == "thief"; };
  RunLease lease(o);
  WriteFileAtomically(LeasePath(dir.path()), FormatLease({"thief", 7, "", "77"}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!lost && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(lost);
  EXPECT_EQ(ParseLease(ReadFile(LeasePath(dir.path())), "lease").host, "thief");
}

// A takeover that lands while the holder renews (every 5 ms here): the holder's renewals
// never put its lease back over the new one.
TEST(RunLeaseTest, ATakeoverDuringARenewalIsNeverOverwritten) {
  for (int round = 0; round < 20; ++round) {
    testing::TempDir dir;
    std::atomic<bool> lost{false};
    RunLease::Options o = Options(dir.path(), /*timeout_s=*/0.02);
    o.on_lost = [&lost](const LeaseHolder&) { lost = true; };
    RunLease lease(o);
    std::this_thread::sleep_for(std::chrono::microseconds(1000 + 250 * round));
    WriteFileAtomically(LeasePath(dir.path()), FormatLease({"thief", 7, "", "77"}));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!lost && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(lost) << "round " << round;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // renewals it might still make
    ASSERT_EQ(ParseLease(ReadFile(LeasePath(dir.path())), "lease").host, "thief")
        << "round " << round;
  }
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
