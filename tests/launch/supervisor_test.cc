// The job supervisor (launch/supervisor/job_supervisor.h) driven by a fake launcher whose
// members are scripted: a member that finishes, dies, hangs, never starts or stops; a host
// that stops answering or comes back; a lease taken over; a stop request. Milliseconds each:
// the deadlines are the config's, set short.
#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/base/run_lease.h"
#include "cluster/metrics/job_record.h"
#include "launch/supervisor/job_supervisor.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;

// What a fake member does; the test and the fake launcher script it.
struct FakeState {
  std::mutex mutex;
  std::condition_variable changed;  // lines or status
  std::optional<int> status;
  bool stopped = false, killed = false;
  std::vector<std::string> lines;
  std::vector<int> signals;
  std::function<void(int)> on_signal;  // called outside the lock
};

class FakeMember : public Member {
 public:
  FakeMember(std::string name, std::shared_ptr<FakeState> s) : name_(std::move(name)), s_(s) {}
  std::string name() const override { return name_; }
  std::optional<int> Poll() override {
    std::lock_guard<std::mutex> lock(s_->mutex);
    return s_->status;
  }
  std::string Describe() override {
    const auto status = Poll();
    return status ? "exited " + std::to_string(*status) : "running";
  }
  bool Stopped() override {
    std::lock_guard<std::mutex> lock(s_->mutex);
    return s_->stopped && !s_->status;
  }
  void Signal(int signal) override {
    std::function<void(int)> hook;
    {
      std::lock_guard<std::mutex> lock(s_->mutex);
      s_->signals.push_back(signal);
      hook = s_->on_signal;
    }
    if (hook) hook(signal);
  }
  void Kill() override {
    std::lock_guard<std::mutex> lock(s_->mutex);
    s_->killed = true;
    if (!s_->status) s_->status = 137;
    s_->changed.notify_all();
  }
  std::vector<std::string> WaitForLines(const std::string& prefix, int count,
                                        double timeout_s) override {
    std::vector<std::string> found;
    auto ready = [&] {
      found.clear();
      for (const std::string& l : s_->lines) {
        if (l.rfind(prefix, 0) == 0) found.push_back(l.substr(prefix.size()));
      }
      return static_cast<int>(found.size()) >= count || s_->status.has_value();
    };
    std::unique_lock<std::mutex> lock(s_->mutex);
    if (!s_->changed.wait_for(lock, std::chrono::duration<double>(timeout_s), ready)) {
      Fail(ErrorCode::kDeadlineExceeded, "no line");
    }
    if (static_cast<int>(found.size()) >= count) return found;
    Fail(ErrorCode::kUnavailable, "ended");
  }
  std::string LastError() override {
    std::lock_guard<std::mutex> lock(s_->mutex);
    return s_->lines.empty() ? "" : s_->lines.back();
  }

 private:
  std::string name_;
  std::shared_ptr<FakeState> s_;
};

// One attempt's fake members, as the fake launcher made them.
struct FakeAttempt {
  Attempt attempt;
  std::shared_ptr<FakeState> coordinator = std::make_shared<FakeState>();
  std::shared_ptr<FakeState> loaders = std::make_shared<FakeState>();
  std::shared_ptr<FakeState> workers = std::make_shared<FakeState>();
};

class FakeLauncher : public Launcher {
 public:
  // Called as the attempt's members start: the scenario sets their states.
  std::function<void(FakeAttempt&)> on_coordinator, on_loaders, on_workers;
  std::vector<std::vector<std::string>> host_lists = {{"localhost"}};  // Hosts(), call by call
  std::set<std::string> unreachable;
  bool multi_host = false;
  std::vector<std::unique_ptr<FakeAttempt>> attempts;

  std::vector<std::string> Hosts() override {
    const size_t at = std::min(hosts_calls_++, host_lists.size() - 1);
    return host_lists[at];
  }
  bool MultiHost() const override { return multi_host; }
  int Workers(const Attempt* previous, const std::vector<std::string>& hosts, int dead) override {
    return previous == nullptr ? static_cast<int>(hosts.size()) * 2
                               : std::max(1, previous->workers - dead);
  }
  int Threads(const Attempt&) override { return 1; }
  std::unique_ptr<Member> StartCoordinator(const Attempt& attempt) override {
    attempts.push_back(std::make_unique<FakeAttempt>());
    FakeAttempt& a = *attempts.back();
    a.attempt = attempt;
    a.coordinator->lines.push_back("listening on 127.0.0.1:1");
    if (on_coordinator) on_coordinator(a);
    return std::make_unique<FakeMember>("coordinator", a.coordinator);
  }
  std::unique_ptr<Member> StartLoaders(const Attempt& attempt) override {
    FakeAttempt& a = *attempts.back();
    for (size_t i = 0; i < attempt.hosts.size(); ++i) {
      a.loaders->lines.push_back("listening on 127.0.0.1:" + std::to_string(10 + i));
    }
    if (on_loaders) on_loaders(a);
    return std::make_unique<FakeMember>("loaders", a.loaders);
  }
  std::unique_ptr<Member> StartWorkers(const Attempt& attempt) override {
    FakeAttempt& a = *attempts.back();
    a.attempt = attempt;
    if (on_workers) on_workers(a);
    return std::make_unique<FakeMember>("workers", a.workers);
  }
  bool Reachable(const std::string& host) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return unreachable.count(host) == 0;
  }
  std::string ResumeCommand() const override { return "resume-me --resume"; }
  std::string LoaderLogs() const override { return "loader.log"; }

 private:
  std::mutex mutex_;
  size_t hosts_calls_ = 0;
};

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() {
    options_.run_dir = dir_.Path("run");
    options_.config.mutable_cluster()->set_heartbeat_timeout_s(0.3);
    options_.config.mutable_cluster()->set_connect_timeout_s(0.5);
    options_.config.mutable_cluster()->set_http_listen("");  // no live page to wait for
    options_.clean_end_s = 0.2;
    options_.failed_end_s = 0.1;
  }
  // The coordinator's verdict in job.json, then every member's end.
  void EndJob(FakeAttempt& a, const std::string& state, const std::string& reason,
              std::optional<JobMemberRecord> culprit = std::nullopt,
              std::vector<JobMemberRecord> members = {}) {
    JobRecord job;
    job.state = state;
    job.reason = reason;
    job.culprit = culprit;
    job.members = std::move(members);
    job.newest_checkpoint = options_.run_dir + "/checkpoints/step-00000004";
    WriteFileAtomically(RunDir(options_.run_dir).job_json(), JobRecordToJson(job).dump());
  }
  static void End(FakeState& s, int status) {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.status = status;
    s.changed.notify_all();
  }
  // The first attempt loses a worker; the next one finishes.
  std::function<void(FakeAttempt&)> DiesThenFinishes() {
    return [this](FakeAttempt& a) {
      if (a.attempt.number == 0) {
        WorkerDied(a);
      } else {
        Finish(a);
      }
    };
  }
  int Run() {
    const auto start = std::chrono::steady_clock::now();
    const int status = JobSupervisor(options_, &launcher_, &stop_, &out_, &err_).Run();
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return status;
  }
  // The job ends the way a finished one does.
  void Finish(FakeAttempt& a) {
    EndJob(a, "finished", "");
    End(*a.workers, 0);
    End(*a.coordinator, 0);
    End(*a.loaders, 0);
  }
  // A worker died: the coordinator says so and ends the job, the members end.
  void WorkerDied(FakeAttempt& a) {
    JobMemberRecord culprit{"worker", 1, "localhost", 0, 42, ""};
    EndJob(a, "failed", "worker 1 (host localhost, pid 42) died", culprit);
    End(*a.workers, 137);
    End(*a.coordinator, 1);
    End(*a.loaders, 0);
  }

  testing::TempDir dir_;
  SupervisorOptions options_;
  FakeLauncher launcher_;
  StopRequests stop_;
  std::ostringstream out_, err_;
  double seconds_ = 0;
};

TEST_F(SupervisorTest, AFinishedJobEndsWithZeroAndItsLeaseGoes) {
  bool reported = false;
  options_.on_finished = [&](const std::string&) { reported = true; };
  launcher_.on_workers = [&](FakeAttempt& a) { Finish(a); };
  EXPECT_EQ(Run(), 0) << err_.str();
  EXPECT_NE(out_.str().find("job finished; run directory " + options_.run_dir), std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("coordinator 127.0.0.1:1, loader 127.0.0.1:10, 2 workers x 1 thread"),
            std::string::npos)
      << out_.str();
  EXPECT_TRUE(reported);
  const RunDir run(options_.run_dir);
  EXPECT_TRUE(fs::exists(run.config()));
  EXPECT_TRUE(fs::exists(run.job_token()));
  EXPECT_FALSE(fs::exists(run.lease()));
}

TEST_F(SupervisorTest, ACoordinatorThatDoesNotStartStopsTheStart) {
  bool loaders = false;
  launcher_.on_coordinator = [](FakeAttempt& a) {
    a.coordinator->lines = {"flexmoe coordinator: error: cannot listen on 10.99.99.99:0"};
    a.coordinator->status = 1;
  };
  launcher_.on_loaders = [&](FakeAttempt&) { loaders = true; };
  EXPECT_EQ(Run(), 1);
  EXPECT_FALSE(loaders) << "loaders were started";
  EXPECT_NE(err_.str().find("the job failed to start: the coordinator did not start (exit 1): "
                            "flexmoe coordinator: error: cannot listen on 10.99.99.99:0"),
            std::string::npos)
      << err_.str();
}

TEST_F(SupervisorTest, ALoaderThatNeverListensStopsTheStartAndEndsTheCoordinator) {
  bool workers = false;
  launcher_.on_loaders = [](FakeAttempt& a) { a.loaders->lines = {"reading shards"}; };
  launcher_.on_workers = [&](FakeAttempt&) { workers = true; };
  EXPECT_EQ(Run(), 1);
  EXPECT_FALSE(workers) << "workers were started";
  EXPECT_NE(err_.str().find("the loaders did not start (no address after 0.5 s): reading shards"),
            std::string::npos)
      << err_.str();
  EXPECT_TRUE(launcher_.attempts[0]->coordinator->killed);
  EXPECT_TRUE(launcher_.attempts[0]->loaders->killed);
}

TEST_F(SupervisorTest, AProgramThatCannotBeStartedStopsTheStart) {
  launcher_.on_coordinator = [](FakeAttempt&) {
    Fail(ErrorCode::kUnavailable, "cannot start the coordinator (mpirun): No such file");
  };
  EXPECT_EQ(Run(), 1);
  EXPECT_NE(err_.str().find("the job failed to start: cannot start the coordinator (mpirun)"),
            std::string::npos)
      << err_.str();
}

TEST_F(SupervisorTest, ADeadWorkerFailsTheJobWithItsStatusAndTheCoordinatorsReason) {
  launcher_.on_workers = [&](FakeAttempt& a) { WorkerDied(a); };
  EXPECT_EQ(Run(), 137);
  EXPECT_NE(err_.str().find("the job failed: worker 1 (host localhost, pid 42) died; newest "
                            "checkpoint " +
                            options_.run_dir + "/checkpoints/step-00000004"),
            std::string::npos)
      << err_.str();
}

TEST_F(SupervisorTest, ARestartGoesOnWithoutTheDeadWorkerFromTheNewestCheckpoint) {
  options_.max_restarts = 1;
  launcher_.on_workers = DiesThenFinishes();
  EXPECT_EQ(Run(), 0) << err_.str();
  ASSERT_EQ(launcher_.attempts.size(), 2u);
  const Attempt& second = launcher_.attempts[1]->attempt;
  EXPECT_EQ(second.number, 1);
  EXPECT_EQ(second.workers, 1);
  EXPECT_TRUE(second.resume);
  EXPECT_EQ(second.why, "worker 1 (host localhost, pid 42) died");
  EXPECT_NE(err_.str().find("restart 1 of 1 after: worker 1 (host localhost, pid 42) died; from " +
                            options_.run_dir + "/checkpoints/step-00000004 on 1 worker"),
            std::string::npos)
      << err_.str();
}

TEST_F(SupervisorTest, AHostThatStopsAnsweringIsTheFirstCauseAndTheRestartLeavesItOut) {
  options_.max_restarts = 1;
  launcher_.multi_host = true;
  launcher_.host_lists = {{"h1", "h2", "h3"}};
  launcher_.on_workers = [&](FakeAttempt& a) {
    if (a.attempt.number > 0) return Finish(a);
    launcher_.unreachable = {"h3"};
    EndJob(a, "failed", "worker 2 sent no heartbeat for 0.3 s",
           JobMemberRecord{"worker", 2, "h3", 0, 7, ""},
           {{"worker", 2, "h3", 0, 7, "failed"},
            {"loader", 2, "h3", 5, 8, "gone"},
            {"worker", 0, "h1", 0, 9, "stopped"}});
    End(*a.coordinator, 1);
    End(*a.loaders, 0);
    // mpirun waits for the lost host's daemon: never ends by itself.
  };
  EXPECT_EQ(Run(), 0) << err_.str();
  EXPECT_TRUE(launcher_.attempts[0]->workers->killed) << "the hung mpirun was not ended";
  EXPECT_NE(err_.str().find("restart 1 of 1 after: host h3 lost (worker 2, loader 2 on it); the "
                            "coordinator: worker 2 sent no heartbeat"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(launcher_.attempts[1]->attempt.hosts, (std::vector<std::string>{"h1", "h2"}));
  EXPECT_NE(out_.str().find("job finished on h1 h2; run directory"), std::string::npos)
      << out_.str();
}

TEST_F(SupervisorTest, AHostThatCameBackOrWasAddedJoinsTheNextRestart) {
  options_.max_restarts = 1;
  launcher_.multi_host = true;
  launcher_.host_lists = {{"h1", "h2"}, {"h1", "h2", "h3"}};
  launcher_.on_workers = DiesThenFinishes();
  EXPECT_EQ(Run(), 0) << err_.str();
  EXPECT_EQ(launcher_.attempts[1]->attempt.hosts, (std::vector<std::string>{"h1", "h2", "h3"}));
}

TEST_F(SupervisorTest, FewerReachableHostsThanTheMinimumEndTheJob) {
  options_.max_restarts = 3;
  options_.min_hosts = 2;
  launcher_.multi_host = true;
  launcher_.host_lists = {{"h1", "h2"}};
  launcher_.on_workers = [&](FakeAttempt& a) {
    launcher_.unreachable = {"h2"};
    WorkerDied(a);
  };
  EXPECT_EQ(Run(), 1);
  EXPECT_EQ(launcher_.attempts.size(), 1u);
  EXPECT_NE(err_.str().find("the job failed: host h2 lost"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("fewer than 2 host(s) left to restart on"), std::string::npos)
      << err_.str();
}

TEST_F(SupervisorTest, AStoppedCoordinatorIsNamedAndEndedOnceTheMembersLostIt) {
  launcher_.on_workers = [&](FakeAttempt& a) {
    EndJob(a, "running", "", std::nullopt, {{"worker", 0, "localhost", 0, 9, "running"}});
    a.coordinator->stopped = true;
    End(*a.workers, 1);  // they lost the coordinator
    End(*a.loaders, 1);
  };
  EXPECT_EQ(Run(), 1);
  EXPECT_TRUE(launcher_.attempts[0]->coordinator->killed);
  EXPECT_NE(err_.str().find("the job failed: the coordinator was stopped (SIGSTOP or a debugger)"),
            std::string::npos)
      << err_.str();
  EXPECT_LT(seconds_, 0.3) << "a stopped coordinator is ended at once";
}

TEST_F(SupervisorTest, ACoordinatorThatStopsAnsweringIsEndedAfterTheHeartbeatTimeout) {
  launcher_.on_workers = [&](FakeAttempt& a) {
    // The job was running, with its workers, when the coordinator stopped answering.
    EndJob(a, "running", "", std::nullopt, {{"worker", 0, "localhost", 0, 9, "running"}});
    End(*a.workers, 1);
    End(*a.loaders, 1);
  };
  EXPECT_EQ(Run(), 1);
  EXPECT_TRUE(launcher_.attempts[0]->coordinator->killed);
  EXPECT_NE(err_.str().find("the coordinator stopped answering (still running 0.4 s after a "
                            "member ended); the members lost it"),
            std::string::npos)
      << err_.str();
  EXPECT_GE(seconds_, 0.4);
}

TEST_F(SupervisorTest, WorkersThatFailBeforeJoiningAreTheFirstCause) {
  launcher_.on_workers = [&](FakeAttempt& a) {
    EndJob(a, "running", "", std::nullopt, {{"loader", 0, "localhost", 5, 8, "running"}});
    End(*a.workers, 132);  // mpirun could not start flexmoe worker
  };
  EXPECT_EQ(Run(), 132);
  EXPECT_NE(err_.str().find("the job failed: the workers exited 132 before any of them joined "
                            "the job; then the coordinator stopped answering"),
            std::string::npos)
      << err_.str();
}

TEST_F(SupervisorTest, MembersStillRunningAfterTheJobEndedAreEnded) {
  launcher_.on_workers = [&](FakeAttempt& a) {
    EndJob(a, "failed", "loader 0 died");
    End(*a.coordinator, 1);  // the workers and loaders hang
  };
  EXPECT_EQ(Run(), 1);
  EXPECT_TRUE(launcher_.attempts[0]->workers->killed);
  EXPECT_TRUE(launcher_.attempts[0]->loaders->killed);
  EXPECT_NE(err_.str().find("ending the workers: still running 0.1 s after the job ended"),
            std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("the job failed: loader 0 died"), std::string::npos) << err_.str();
}

TEST_F(SupervisorTest, AStopRequestHasTheCoordinatorCheckpointAndEndsWithZero) {
  launcher_.on_workers = [&](FakeAttempt& a) {
    a.coordinator->on_signal = [this, &a](int signal) {
      if (signal != SIGUSR1) return;
      EndJob(a, "preempted", "");
      End(*a.workers, 0);
      End(*a.coordinator, 0);
      End(*a.loaders, 0);
    };
    stop_.terminate_signal = SIGTERM;
  };
  EXPECT_EQ(Run(), 0) << err_.str();
  EXPECT_NE(out_.str().find("job stopped at a checkpoint; run directory " + options_.run_dir +
                            "; newest checkpoint " + options_.run_dir +
                            "/checkpoints/step-00000004; continue with: resume-me --resume"),
            std::string::npos)
      << out_.str();
}

TEST_F(SupervisorTest, ASecondInterruptEndsEverythingAtOnce) {
  options_.max_restarts = 2;
  launcher_.on_workers = [&](FakeAttempt&) { stop_.interrupts = 2; };
  EXPECT_NE(Run(), 0);
  EXPECT_EQ(launcher_.attempts.size(), 1u) << "no restart after the user stopped the job";
  EXPECT_TRUE(launcher_.attempts[0]->workers->killed);
  EXPECT_NE(out_.str().find("stopping at once"), std::string::npos) << out_.str();
}

TEST_F(SupervisorTest, ALeaseTakenOverStopsTheJobAtOnce) {
  options_.max_restarts = 2;
  launcher_.on_workers = [&](FakeAttempt&) {
    // Another job's lease, of another generation, moved over this one's.
    const std::string lease = LeasePath(options_.run_dir);
    WriteFileAtomically(lease, FormatLease(LeaseHolder{"thief", 1, "another job", "feedbeef"}));
  };
  EXPECT_NE(Run(), 0);
  EXPECT_EQ(launcher_.attempts.size(), 1u);
  EXPECT_TRUE(launcher_.attempts[0]->workers->killed);
  EXPECT_NE(err_.str().find("the job failed: another job took over the run directory's lease"),
            std::string::npos)
      << err_.str();
  EXPECT_LT(seconds_, 2);
}

TEST_F(SupervisorTest, ARunDirectoryALiveJobHoldsIsRefused) {
  RunLease::Options other;
  other.run_dir = options_.run_dir;
  other.timeout_s = 0.3;
  other.what = "the other job";
  fs::create_directories(options_.run_dir);
  const RunLease held(other);
  try {
    Run();
    FAIL() << "a second job on a held run directory ran";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("the other job"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(launcher_.attempts.empty());
}

}  // namespace
}  // namespace flexmoe
