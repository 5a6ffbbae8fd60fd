// Simulated members of a job (control_plane_sim.h).
#include "bench/control_plane_sim.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/base/open_files.h"
#include "cluster/coord/client.h"
#include "cluster/coord/report_sink.h"
#include "cluster/metrics/run_records.h"
#include "proto/config_compare.h"
#include "proto/config_loader.h"

namespace flexmoe::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> leave_signal{0};
void OnSignal(int signal) { leave_signal = signal; }

// How each member's membership ended, as its on_stop said.
struct MemberEnd {
  std::atomic<int64_t> stop_ns{0};
  std::string how = "none", line;
};

class Simulation {
 public:
  explicit Simulation(const SimulationOptions& options)
      : options_(options), ends_(static_cast<size_t>(options.count)) {
    const config::Config config = LoadConfig(options.config, options.overrides);
    config_hash_ = ComputationHash(config);
    config_text_ = ConfigToText(config);
    clients_.resize(static_cast<size_t>(options.count));
    sinks_.resize(clients_.size());
  }

  // Registers every member, `register_threads` at a time (each blocks for its ACCEPTED).
  void Register() {
    std::atomic<int> next{0};
    std::mutex failure_mutex;
    std::string failure;
    std::vector<std::thread> threads;
    for (int t = 0; t < options_.register_threads; ++t) {
      threads.emplace_back([&] {
        for (int i = next++; i < options_.count; i = next++) {
          try {
            clients_[i] = std::make_unique<CoordinatorClient>(ClientOptions(i));
            sinks_[i] = std::make_unique<CoordinatorReportSink>(clients_[i].get());
          } catch (const Error& e) {
            std::lock_guard<std::mutex> lock(failure_mutex);
            if (failure.empty()) failure = e.what();
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    if (!failure.empty()) Fail(ErrorCode::kUnavailable, "registering: ", failure);
    if (options_.first == 0) sinks_[0]->Open(clients_[0]->accepted().run_dir());
  }

  // Reports one step record per member every interval, catching up on steps a stopped
  // process missed (a real worker takes every step), until every member was told to stop or
  // a signal came.
  void Report() {
    const auto start = Clock::now();
    int64_t next_step = 0;
    while (leave_signal == 0 && stopped_ < options_.count) {
      const auto due = std::chrono::duration<double>(Clock::now() - start).count();
      for (; next_step <= static_cast<int64_t>(due / options_.report_interval_s); ++next_step) {
        SendStep(next_step);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (leave_signal == SIGUSR1) {
      for (auto& client : clients_) client->Leave();
    }
  }

  void Write() const {
    std::ofstream out(options_.out);
    for (int i = 0; i < options_.count; ++i) {
      const MemberEnd& e = ends_[i];
      out << options_.first + i << " " << e.stop_ns.load() << " " << e.how << " " << e.line << "\n";
    }
  }

 private:
  CoordinatorClientOptions ClientOptions(int i) {
    CoordinatorClientOptions o;
    o.address = options_.address;
    o.token = options_.token;
    o.member.set_role(coordinator::WORKER);
    o.member.set_rank(options_.first + i);
    o.member.set_host("sim");
    o.member.set_pid(::getpid());
    o.world_size = options_.world;
    o.config_hash = config_hash_;
    o.config_text = config_text_;
    o.connect_timeout_s = 120;
    o.on_stop = [this, i](bool finished, const std::string& line, int) {
      MemberEnd& e = ends_[i];
      {
        std::lock_guard<std::mutex> lock(mutex_);
        // "lost" (on_lost came first) stays.
        if (e.how == "none") e.how = finished ? "finished" : "stopped";
        e.line = line;
      }
      e.stop_ns = SteadyNowNs();
      ++stopped_;
    };
    o.on_lost = [this, i] {
      std::lock_guard<std::mutex> lock(mutex_);
      ends_[i].how = "lost";
    };
    return o;
  }

  // Step `step` of every member: a worker's step record as a trainer logs it (its window,
  // its phase split, its tokens per layer, expert and combination).
  void SendStep(int64_t step) {
    std::uniform_real_distribution<double> jitter(0.9, 1.1);
    for (int i = 0; i < options_.count; ++i) {
      if (ends_[i].stop_ns != 0) continue;
      WorkerStepLine line;
      line.at.epoch = static_cast<int>(step / 100);
      line.at.step = step % 100;
      line.at.global_step = step;
      line.at.workers = options_.world;
      line.at.loss = line.at.task_loss = 0.7;
      line.worker = options_.first + i;
      line.steps = 1;
      line.samples = 64;
      line.seconds = options_.report_interval_s;
      line.step_ms = {600 * jitter(random_), 200 * jitter(random_), 50, 10};
      line.tokens.layers = {0};
      line.tokens.experts = 16;
      line.tokens.combinations = 15;
      line.tokens.counts.assign(1, std::vector<int64_t>(16 * 15, 17));
      clients_[i]->SetStep(step);
      sinks_[i]->WorkerStep(options_.first + i, ToJson(line));
      // Worker 0 re-packs now and then: its placement goes back to the coordinator.
      if (options_.first + i == 0 && step > 0 && step % 30 == 0) {
        clients_[i]->ReportPlacement(clients_[i]->placement(), step);
      }
    }
  }

  const SimulationOptions& options_;
  uint32_t config_hash_ = 0;
  std::string config_text_;
  std::vector<std::unique_ptr<CoordinatorClient>> clients_;
  std::vector<std::unique_ptr<CoordinatorReportSink>> sinks_;
  std::vector<MemberEnd> ends_;
  std::mutex mutex_;
  std::atomic<int> stopped_{0};
  std::mt19937 random_{static_cast<uint32_t>(::getpid())};
};

}  // namespace

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

int SimulateMembers(const SimulationOptions& options) {
  std::signal(SIGUSR1, OnSignal);
  std::signal(SIGTERM, OnSignal);
  EnsureOpenFiles(options.count + 64, "the simulated members");
  Simulation simulation(options);
  simulation.Register();
  std::cout << "registered " << options.count << std::endl;
  simulation.Report();
  simulation.Write();
  std::cout << "done" << std::endl;
  // The members' threads end with the clients (without LEAVE unless SIGUSR1 had them leave).
  return 0;
}

}  // namespace flexmoe::bench
