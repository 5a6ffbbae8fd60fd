// The live view (cluster/web): run records folded into the view, /api/job's JSON, the
// Prometheus text parsed back (and checked by promtool), the HTTP server's token, limits and
// deadlines, a run directory's view, and the coordinator's heartbeats on time while 200
// connections hold its HTTP port.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "cluster/base/error.h"
#include "cluster/coord/client.h"
#include "cluster/coord/service.h"
#include "cluster/web/http_server.h"
#include "cluster/web/job_view.h"
#include "cluster/web/routes.h"
#include "cluster/web/run_dir_view.h"
#include "cluster/web/view_json.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/web/http_client.h"

namespace flexmoe {
namespace {

using Json = nlohmann::json;
using testing::HttpGet;

struct Failure {
  std::optional<ErrorCode> code;  // none: `body` did not throw
  std::string what;
};

// The flexmoe::Error `body` throws.
Failure ErrorOf(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  return {};
}

StepLine Step(uint64_t seed, int epoch, int64_t global_step, std::vector<PhaseMsRecord> workers) {
  StepLine s;
  s.at.seed = seed;
  s.at.epoch = epoch;
  s.at.global_step = global_step;
  s.at.loss = 0.5 + epoch;
  s.steps = 10;
  s.samples = 160;
  s.samples_per_s = 1000 + global_step;
  s.worker_step_ms = std::move(workers);
  SummarizeWorkers(s.worker_step_ms, &s);
  s.step_ms = s.worker_step_ms.back();
  s.tokens.layers = {1};
  s.tokens.experts = 2;
  s.tokens.combinations = 3;
  // [e * combinations + c]: expert 0 gets combination c's c + 1 tokens, expert 1 10 * (c + 1).
  s.tokens.counts = {{1, 2, 3, 10, 20, 30}};
  return s;
}

EpochLine Epoch(uint64_t seed, int epoch, double acc) {
  EpochLine e;
  e.seed = seed;
  e.epoch = epoch;
  e.train_loss = 1.0 / (epoch + 1);
  e.expert_imbalance = 1.25;
  e.validation = {100, acc, acc - 0.1, kNoScore};
  return e;
}

// Two epochs of seed 7 on 2 workers, rank 1 the straggler, and a restart.
JobViewState TwoEpochs() {
  JobViewState state;
  state.job.job_id = "j1";
  state.job.state = "running";
  state.job.workers = 2;
  state.job.combinations = {"a+b", "a", "b"};
  state.job.newest_checkpoint = "/r/checkpoints/step-00000020";
  state.newest_checkpoint_step = CheckpointStep(state.job.newest_checkpoint);
  AddRunRecord(state, ToJson(Step(7, 0, 9, {{10, 1, 1, 0}, {10, 1, 1, 0}})));
  AddRunRecord(state, ToJson(Epoch(7, 0, 0.6)));
  AddRunRecord(state, ToJson(Step(7, 1, 19, {{10, 1, 1, 0}, {20, 1, 1, 0}})));
  AddRunRecord(state, ToJson(Epoch(7, 1, 0.7)));
  RestartLine restart;
  restart.attempt = 1;
  restart.reason = "worker 1 died";
  restart.workers = 1;
  AddRunRecord(state, ToJson(restart));
  AddRunRecord(state, {{"event", "something-else"}});
  return state;
}

// The coordinator's thread never waits for a request that is copying the view (a request
// thread starved mid-copy must not delay heartbeat judgement): while the view is held,
// every update returns at once; the job, the records and the heartbeat are applied, in
// order, by the next copy.
TEST(JobViewTest, UpdatesNeverWaitForACopyInProgress) {
  JobView view(4, 0, 64);
  JobRecord job;
  job.job_id = "j1";
  job.workers = 1;
  job.members = {{"worker", 0, "h", 0, 42, "running"}};
  std::future<void> updates;
  {
    auto held = view.HoldForTest();
    updates = std::async(std::launch::async, [&] {
      view.SetJob(job);
      view.Heard("worker", 0, JobView::Clock::now());
      view.AddRecord(ToJson(Step(7, 0, 9, {{10, 1, 1, 0}})));
      view.AddRecord({{"event", "step"}, {"global_step", "not a number"}});  // skipped
      view.AddRecord(ToJson(Step(7, 0, 19, {{10, 1, 1, 0}})));
      view.SetControlPlane(ControlPlaneFigures{});
    });
    ASSERT_EQ(updates.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  }
  updates.get();
  const JobViewState state = view.Snapshot();
  EXPECT_EQ(state.job.job_id, "j1");
  ASSERT_TRUE(state.last_step.has_value());
  EXPECT_EQ(state.last_step->at.global_step, 19);
  EXPECT_EQ(state.samples_total, 320);
  EXPECT_TRUE(state.control_plane.has_value());
  ASSERT_EQ(state.members.size(), 1u);
  ASSERT_TRUE(state.members[0].heartbeat_age_s.has_value());  // queued while held
  EXPECT_LT(*state.members[0].heartbeat_age_s, 10.0);
}

TEST(JobViewTest, RecordsFoldIntoTheView) {
  const JobViewState state = TwoEpochs();
  EXPECT_EQ(state.seed, 7u);
  ASSERT_EQ(state.epochs.size(), 2u);
  EXPECT_EQ(state.samples_total, 320);
  EXPECT_EQ(state.newest_checkpoint_step, 20);
  const Json j = JobViewJson(state);
  EXPECT_EQ(j["epochs"][1]["epoch"], 2);  // from 1, as the launcher prints
  EXPECT_DOUBLE_EQ(j["epochs"][1]["validation"]["acc"].get<double>(), 0.7);
  EXPECT_TRUE(j["epochs"][1]["validation"]["auc"].is_null());
  EXPECT_EQ(j["step"]["global_step"], 19);
  EXPECT_FALSE(j["step"]["workers"][0]["straggler"].get<bool>());
  EXPECT_TRUE(j["step"]["workers"][1]["straggler"].get<bool>());
  // The heatmap counts the current epoch only: rows are combinations, columns experts.
  ASSERT_EQ(j["heatmaps"].size(), 1u);
  EXPECT_EQ(j["heatmaps"][0]["epoch"], 2);
  EXPECT_EQ(j["heatmaps"][0]["layer"], 1);
  EXPECT_EQ(j["heatmaps"][0]["combinations"], Json({"a+b", "a", "b"}));
  EXPECT_EQ(j["heatmaps"][0]["tokens"], Json({{1, 10}, {2, 20}, {3, 30}}));
  EXPECT_EQ(j["restarts"][0]["reason"], "worker 1 died");
  EXPECT_EQ(j["checkpoints"]["newest_step"], 20);
  // A new seed starts its curves afresh.
  JobViewState next = state;
  AddRunRecord(next, ToJson(Epoch(8, 0, 0.5)));
  EXPECT_EQ(next.seed, 8u);
  EXPECT_EQ(next.epochs.size(), 1u);
  EXPECT_FALSE(next.last_step.has_value());
  EXPECT_EQ(CheckpointStep("/x/step-00000120/"), 120);
  EXPECT_EQ(CheckpointStep(""), -1);
  EXPECT_EQ(CheckpointStep("/x/step-99999999999999999999999"), -1);
  // The launcher's attempt number counts as restarts before any record says so.
  JobView view(4, 2, 64);
  EXPECT_EQ(view.Snapshot().restart_count, 2);
  EXPECT_EQ(JobViewJson(view.Snapshot())["restart_count"], 2);
  // Token counts of the wrong shape are refused, not indexed out of bounds.
  Json bad = ToJson(Step(7, 0, 9, {{10, 1, 1, 0}}));
  bad["tokens"]["counts"][0].erase(0);
  JobViewState s;
  EXPECT_EQ(ErrorOf([&] { AddRunRecord(s, bad); }).code, ErrorCode::kDataLoss);
}

// name{labels} -> value, for every sample line of a Prometheus text.
std::map<std::string, double> ParseSamples(const std::string& text) {
  std::map<std::string, double> samples;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

TEST(PrometheusTest, TextParsesBackAndPassesPromtool) {
  JobViewState state = TwoEpochs();
  state.members = {{{"worker", 0, "h\"1", 0, 42, "running"}, 0.25},
                   {{"loader", 0, "h1", 5, 43, "running"}, std::nullopt}};
  const std::string text = PrometheusText(state);
  const auto samples = ParseSamples(text);
  EXPECT_EQ(samples.at("flexmoe_samples_total"), 320);
  EXPECT_EQ(samples.at("flexmoe_samples_per_second"), 1019);
  EXPECT_EQ(samples.at("flexmoe_epoch"), 2);
  EXPECT_EQ(samples.at("flexmoe_global_step"), 19);
  EXPECT_EQ(samples.at("flexmoe_step_phase_seconds{worker=\"1\",phase=\"compute\"}"), 0.02);
  EXPECT_EQ(samples.at("flexmoe_heartbeat_age_seconds{role=\"worker\",rank=\"0\",host=\"h\\\"1\"}"),
            0.25);
  EXPECT_EQ(samples.count("flexmoe_heartbeat_age_seconds{role=\"loader\",rank=\"0\",host=\"h1\"}"),
            0u);
  // Both epochs' tokens: expert 0 got 2 * (1 + 2 + 3), expert 1 2 * (10 + 20 + 30).
  EXPECT_EQ(samples.at("flexmoe_expert_tokens_total{layer=\"1\",expert=\"0\"}"), 12);
  EXPECT_EQ(samples.at("flexmoe_expert_tokens_total{layer=\"1\",expert=\"1\"}"), 120);
  EXPECT_EQ(samples.at("flexmoe_expert_imbalance"), 1.25);
  EXPECT_EQ(samples.at("flexmoe_validation_score{metric=\"acc\"}"), 0.7);
  EXPECT_EQ(samples.count("flexmoe_validation_score{metric=\"auc\"}"), 0u);  // undefined
  EXPECT_EQ(samples.at("flexmoe_checkpoint_newest_step"), 20);
  EXPECT_EQ(samples.at("flexmoe_restarts"), 1);  // the restart record's attempt
  EXPECT_EQ(samples.at("flexmoe_job_info{job_id=\"j1\",state=\"running\"}"), 1);
  EXPECT_EQ(samples.at("flexmoe_straggler_rank"), 1);
  EXPECT_EQ(samples.at("flexmoe_worker_step_seconds{stat=\"max\"}"), 0.022);
  EXPECT_EQ(samples.at("flexmoe_heartbeat_age_max_seconds"), 0.25);
  ControlPlaneFigures control;
  control.loop_lag = {0.001, 0.01, 0.02, 0.5, 100};
  control.heartbeat_gap = {1, 1.2, 1.5, 90, 90};
  control.job_json = {0.01, 0.02, 0.03, 0.5, 30};
  control.job_json_write_max_s = 0.05;
  control.reports_per_s = 7;
  state.control_plane = control;
  // Debian's prometheus package's linter.
  testing::TempDir dir;
  const std::string path = dir.Write("metrics.txt", PrometheusText(state));
  auto r = testing::RunCommand({"bash", "-c", "promtool check metrics < " + path});
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << text;
  EXPECT_EQ(r.output, "") << r.output;  // no lint warnings either
}

// Above metrics.per_worker_limit workers /metrics has no per-member or per-worker series:
// a scrape of a job of thousands stays the size of a small one's.
TEST(PrometheusTest, PerMemberSeriesOnlyUpToThePerWorkerLimit) {
  JobViewState state = TwoEpochs();
  state.members = {{{"worker", 0, "h1", 0, 42, "running"}, 0.25},
                   {{"worker", 1, "h1", 0, 43, "running"}, 3.5}};
  state.per_worker_limit = 1;
  StepLine step = *state.last_step;
  step.worker_step_ms.clear();  // as the coordinator logs a job over the limit
  state.last_step = step;
  const auto samples = ParseSamples(PrometheusText(state));
  EXPECT_EQ(samples.at("flexmoe_heartbeat_age_max_seconds"), 3.5);
  EXPECT_EQ(samples.at("flexmoe_straggler_rank"), 1);
  for (const auto& [name, value] : samples) {
    EXPECT_EQ(name.find("flexmoe_heartbeat_age_seconds"), std::string::npos) << name;
    EXPECT_EQ(name.find("flexmoe_step_phase_seconds"), std::string::npos) << name;
  }
}

HttpServerOptions Options(const std::string& token) {
  HttpServerOptions options;
  options.token = token;
  options.request_timeout_s = 0.5;
  options.max_connections = 8;
  return options;
}

HttpHandler Hello() {
  return [](const std::string& path) -> std::optional<HttpReply> {
    if (path != "/hello") return std::nullopt;
    return HttpReply{200, "text/plain", "hi"};
  };
}

TEST(HttpServerTest, TheTokenIsRequired) {
  HttpServer server(Options("s3cret"), Hello());
  const std::string a = server.address();
  EXPECT_EQ(a.rfind("127.0.0.1:", 0), 0u) << a;  // loopback by default
  const auto refused = HttpGet(a, "/hello");
  EXPECT_EQ(refused.status, 401);
  // It names the page's own token file, not the job's.
  EXPECT_NE(refused.body.find("RUN_DIR/web.token"), std::string::npos) << refused.body;
  EXPECT_EQ(refused.body.find("job.token"), std::string::npos) << refused.body;
  EXPECT_EQ(HttpGet(a, "/hello", "Authorization: Bearer wrong\r\n").status, 401);
  EXPECT_EQ(HttpGet(a, "/hello?token=wrong").status, 401);
  auto ok = HttpGet(a, "/hello", "Authorization: Bearer s3cret\r\n");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "hi");
  // The printed URL sets the cookie and sends the browser on without the token.
  auto redirect = HttpGet(a, "/?token=s3cret");
  EXPECT_EQ(redirect.status, 303);
  EXPECT_EQ(testing::HeaderValue(redirect.head, "Location"), "/");
  const std::string cookie = testing::HeaderValue(redirect.head, "Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  const std::string pair = cookie.substr(0, cookie.find(';'));
  EXPECT_EQ(HttpGet(a, "/hello", "Cookie: other=1; " + pair + "\r\n").status, 200);
  EXPECT_EQ(HttpGet(a, "/hello", "Cookie: " + pair + "x\r\n").status, 401);
  EXPECT_EQ(HttpGet(a, "/nothing", "Authorization: Bearer s3cret\r\n").status, 404);
  // Read-only.
  auto post = testing::Exchange(testing::ConnectTo(a),
                                "POST /hello HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n"
                                "Content-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(post.status, 405);
  EXPECT_GE(server.stats().unauthorized, 4);
  // Without a token (cluster.http_require_token: false) anyone is served who names the
  // server by its address or localhost.
  HttpServer open(Options(""), Hello());
  EXPECT_EQ(HttpGet(open.address(), "/hello").status, 200);
}

// A GET for `path` with the Host header `host` (none when empty), HTTP/1.1 or 1.0.
testing::HttpResponse GetWithHost(const std::string& address, const std::string& host,
                                  const std::string& version = "1.1") {
  return testing::Exchange(testing::ConnectTo(address),
                           "GET /hello HTTP/" + version + "\r\n" +
                               (host.empty() ? "" : "Host: " + host + "\r\n") +
                               "Connection: close\r\n\r\n");
}

TEST(HttpServerTest, WithoutATokenOnlyItsOwnNamesAreServed) {
  HttpServer open(Options(""), Hello());
  const std::string a = open.address();
  const std::string port = a.substr(a.rfind(':') + 1);
  for (const std::string& host : {a, "localhost:" + port, std::string("LOCALHOST"), "[::1]:" + port,
                                  std::string("10.1.2.3")}) {
    EXPECT_EQ(GetWithHost(a, host).status, 200) << host;
  }
  EXPECT_EQ(GetWithHost(a, "", "1.0").status, 200);  // HTTP/1.0 need not send one
  // A DNS-rebinding page reaches 127.0.0.1 under a name of its own.
  for (const std::string& host :
       {"attacker.example:" + port, std::string("attacker.example"),
        std::string("127.0.0.1.attacker.example"), std::string("[not-an-address]")}) {
    const auto r = GetWithHost(a, host);
    EXPECT_EQ(r.status, 421) << host;
    EXPECT_NE(r.body, "hi") << host;
  }
  // With a token, the token decides (a proxy may use any name).
  HttpServer guarded(Options("s3cret"), Hello());
  EXPECT_EQ(testing::Exchange(testing::ConnectTo(guarded.address()),
                              "GET /hello HTTP/1.1\r\nHost: proxy.example\r\n"
                              "Authorization: Bearer s3cret\r\nConnection: close\r\n\r\n")
                .status,
            200);
}

TEST(HttpServerTest, HeadSendsTheLengthOfWhatGetSends) {
  HttpServer server(Options(""), Hello());
  const std::string a = server.address();
  const auto get = HttpGet(a, "/hello");
  const auto head = testing::Exchange(testing::ConnectTo(a), "HEAD /hello HTTP/1.1\r\nHost: " + a +
                                                                 "\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(get.status, 200);
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(testing::HeaderValue(head.head, "Content-Length"), std::to_string(get.body.size()));
  EXPECT_EQ(testing::HeaderValue(head.head, "Content-Type"),
            testing::HeaderValue(get.head, "Content-Type"));
  EXPECT_TRUE(head.body.empty()) << head.body;
}

TEST(HttpServerTest, OversizedAndSlowRequestsAreRefused) {
  HttpServer server(Options(""), Hello());
  const std::string a = server.address();
  auto big = HttpGet(a, "/hello", "X-Big: " + std::string(20000, 'x') + "\r\n");
  EXPECT_EQ(big.status, 431);
  // A body on a read-only endpoint.
  auto body = testing::Exchange(testing::ConnectTo(a),
                                "GET /hello HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789");
  EXPECT_EQ(body.status, 413);
  // A request that never ends is cut at the request deadline (0.5 s), well before the
  // client's own 5 s.
  const auto start = std::chrono::steady_clock::now();
  auto slow = testing::Exchange(testing::ConnectTo(a), "GET /hello HTTP/1.1\r\nX-Slow: 1");
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(slow.status, 0);
  EXPECT_LT(waited, 4.0);
  // The server counts it once its handler ran (the socket closes first).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server.stats().timed_out == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(server.stats().timed_out, 1);
  EXPECT_EQ(HttpGet(a, "/hello").status, 200);
}

TEST(HttpServerTest, ConnectionsBeyondTheLimitAreRefused) {
  HttpServerOptions options = Options("");  // 8 at once
  options.request_timeout_s = 60;           // the idle ones stay until closed
  HttpServer server(options, Hello());
  const std::string a = server.address();
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(testing::ConnectTo(a));
  // Wait until the server has all 8 (accepts are asynchronous).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server.stats().open_connections < 8 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(server.stats().open_connections, 8);
  auto refused = HttpGet(a, "/hello");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(server.stats().refused_connections, 1);
  for (int fd : idle) ::close(fd);
  // Once they are gone (closed by us, or by the request deadline) it serves again.
  testing::HttpResponse again;
  while (again.status != 200 &&
         std::chrono::steady_clock::now() < deadline + std::chrono::seconds(5)) {
    again = HttpGet(a, "/hello");
  }
  EXPECT_EQ(again.status, 200);
}

// The members come 50 at a time, the failed, the gone, the silent and the late first, then
// the rest as they registered; the summary counts them by state, the hosts in trouble first.
TEST(JobViewTest, MembersArePagedWithThoseInTroubleFirst) {
  JobViewState state;
  state.heartbeat_timeout_s = 4;
  for (int r = 0; r < 120; ++r) {
    const std::string state_name = r == 77 ? "failed" : r == 5 ? "gone" : "running";
    const std::optional<double> age = r == 90 ? 5.0 : r == 100 ? 2.5 : 0.5;
    state.members.push_back({{"worker", r, r < 60 ? "a" : "b", 0, 1000 + r, state_name}, age});
  }
  const Json j = JobViewJson(state);
  EXPECT_EQ(j["members_total"], 120);
  ASSERT_EQ(j["members"].size(), kMembersPage);
  // failed, gone, silent past the timeout, late past half of it; then ranks in order.
  std::vector<int> first;
  for (int i = 0; i < 6; ++i) first.push_back(j["members"][i]["rank"].get<int>());
  EXPECT_EQ(first, (std::vector<int>{77, 5, 90, 100, 0, 1}));
  EXPECT_EQ(j["member_summary"]["by_state"]["running"], 118);
  EXPECT_EQ(j["member_summary"]["by_state"]["failed"], 1);
  EXPECT_EQ(j["member_summary"]["hosts_total"], 2);
  EXPECT_EQ(j["member_summary"]["hosts"][0]["host"], "b");  // 77, 90 and 100 are on b
  EXPECT_EQ(j["member_summary"]["hosts"][0]["trouble"], 3);
  // The last page, a page past the end, and the route.
  const Json last = MembersPageJson(state, 100);
  EXPECT_EQ(last["members"].size(), 20u);
  EXPECT_EQ(last["members"].back()["rank"], 119);
  EXPECT_EQ(last["total"], 120);
  EXPECT_TRUE(MembersPageJson(state, 500)["members"].empty());
  const HttpHandler routes = ViewRoutes([&] { return state; });
  const auto page = routes("/api/members/50");
  ASSERT_TRUE(page.has_value());
  // The 51st: the four in trouble first, then ranks 0-4 and 6-76 (5 is gone): rank 47.
  EXPECT_EQ(Json::parse(page->body)["members"][0]["rank"], 47);
  EXPECT_FALSE(routes("/api/members/").has_value());
  EXPECT_FALSE(routes("/api/members/-1").has_value());
  EXPECT_FALSE(routes("/api/members/99999999999").has_value());
}

TEST(RunDirViewTest, ReadsJobJsonAndMetricsSkippingATornLine) {
  testing::TempDir dir;
  JobRecord job;
  job.job_id = "j2";
  job.state = "failed";
  job.reason = "worker 1 was killed";
  job.culprit = JobMemberRecord{"worker", 1, "h", 0, 99, ""};
  dir.Write("job.json", JobRecordToJson(job).dump());
  dir.Write("metrics.jsonl", ToJson(Epoch(1, 0, 0.5)).dump() + "\n" +
                                 ToJson(Epoch(1, 1, 0.6)).dump() + "\n{\"event\":\"ep");
  const JobViewState state = ReadRunDirView(dir.path());
  EXPECT_EQ(state.source, "run_dir");
  EXPECT_EQ(state.epochs.size(), 2u);
  const Json j = JobViewJson(state);
  EXPECT_EQ(j["culprit"]["rank"], 1);
  EXPECT_EQ(j["reason"], "worker 1 was killed");
  // Seed directories follow the run's own file, in seed order.
  dir.Write("seed-2/metrics.jsonl", ToJson(Epoch(2, 0, 0.9)).dump() + "\n");
  RunDirView view(dir.path());
  EXPECT_EQ(view.Snapshot().seed, 2u);
  dir.Write("seed-2/metrics.jsonl", "{\"event\":\"epoch\",\"seed\":2,\"epoch\":\"one\"}\n");
  const Failure bad = ErrorOf([&] { view.Snapshot(); });
  EXPECT_EQ(bad.code, ErrorCode::kDataLoss);
  EXPECT_NE(bad.what.find("seed-2/metrics.jsonl:1"), std::string::npos) << bad.what;
  testing::TempDir empty;
  EXPECT_EQ(ErrorOf([&] { ReadRunDirView(empty.path()); }).code, ErrorCode::kNotFound);
}

// A coordinator with the live page (token "tok"), serving on a thread of its own until the
// test ends, however it ends.
CoordinatorOptions LiveOptions(const std::string& run_dir, const std::string& job_id) {
  CoordinatorOptions options;
  options.token = "tok";
  options.run_dir = run_dir;
  options.job_id = job_id;
  options.http_listen = "127.0.0.1:0";
  options.placement = [](int) { return PlacementMap(); };
  return options;
}

struct LiveCoordinator {
  explicit LiveCoordinator(const CoordinatorOptions& options)
      : service(options), serving([this] { service.Run(); }) {}
  ~LiveCoordinator() {
    service.Stop("test over");
    serving.join();
  }
  CoordinatorService service;
  std::thread serving;
};

// The coordinator's heartbeats stay on time while 200 connections hold its HTTP port
// (idle ones, ones that never finish their request) and a client polls /api/job and
// /metrics as fast as it can: the member's heartbeat timeout (0.6 s) never passes, and the
// page shows its heartbeat as fresh.
TEST(CoordinatorLiveViewTest, HeartbeatsStayOnTimeUnder200Connections) {
  testing::TempDir dir;
  CoordinatorOptions options = LiveOptions(dir.Path("run"), "live");
  options.heartbeat_interval_s = 0.1;
  options.heartbeat_timeout_s = 0.6;
  LiveCoordinator live(options);
  CoordinatorService& service = live.service;
  CoordinatorClientOptions member;
  member.address = service.address();
  member.token = "tok";
  member.member.set_role(coordinator::LOADER);
  member.member.set_host("h");
  std::mutex stop_mutex;
  std::string stop_line;
  member.on_stop = [&](bool, const std::string& line, int) {
    std::lock_guard<std::mutex> lock(stop_mutex);
    stop_line += line + "\n";
  };
  auto client = std::make_unique<CoordinatorClient>(member);
  const std::string http = service.http_address();
  // The page has a token of its own, in RUN/web.token (mode 0600), not the job's.
  const std::string token = service.http_token();
  EXPECT_EQ(token.size(), 32u);
  EXPECT_NE(token, "tok");
  struct stat st {};
  ASSERT_EQ(::stat((options.run_dir + "/web.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(HttpGet(http, "/api/job", "Authorization: Bearer tok\r\n").status, 401);
  std::vector<int> held;
  for (int i = 0; i < 200; ++i) {
    const int fd = testing::ConnectTo(http);
    if (i % 2 == 1 && fd >= 0) (void)!::send(fd, "GET / HTTP/1.1\r\nX-", 18, MSG_NOSIGNAL);
    held.push_back(fd);
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  double oldest_age = 0;
  int served = 0, ages = 0;
  while (std::chrono::steady_clock::now() < end) {
    const std::string path = served % 2 ? "/metrics" : "/api/job";
    auto r = HttpGet(http, path, "Authorization: Bearer " + token + "\r\n");
    ASSERT_EQ(r.status, 200) << r.head;
    ++served;
    if (path == "/metrics") continue;
    const Json j = Json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    for (const Json& m : j["members"]) {
      if (!m["heartbeat_age_s"].is_null()) {
        ++ages;
        oldest_age = std::max(oldest_age, m["heartbeat_age_s"].get<double>());
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(stop_mutex);
    EXPECT_EQ(stop_line, "");
  }
  EXPECT_GT(served, 10);
  EXPECT_GT(ages, 5);
  EXPECT_LT(oldest_age, 0.6);
  for (int fd : held) ::close(fd);
  client->Leave();
  client.reset();
}

// job.json's record is built at most every 0.2 s however fast members register (a build is a
// pass over every member: once per registration, 4,096 registrations took 33 s), and what
// the last registration changed is on disk all the same.
TEST(CoordinatorLiveViewTest, RegistrationsDoNotRebuildJobJsonEachTime) {
  testing::TempDir dir;
  const CoordinatorOptions options = LiveOptions(dir.Path("run"), "many");
  LiveCoordinator live(options);
  CoordinatorService& service = live.service;
  const int members = 300;
  std::vector<std::unique_ptr<CoordinatorClient>> clients(members);
  std::vector<std::thread> registering;
  for (int t = 0; t < 4; ++t) {
    registering.emplace_back([&, t] {
      for (int r = t; r < members; r += 4) {
        CoordinatorClientOptions member;
        member.address = service.address();
        member.token = "tok";
        member.member.set_role(coordinator::LOADER);
        member.member.set_rank(r);
        member.member.set_host("h");
        clients[r] = std::make_unique<CoordinatorClient>(member);
      }
    });
  }
  for (std::thread& t : registering) t.join();
  const auto registered = std::chrono::steady_clock::now();
  // Every member in job.json, within a deadline.
  const std::string job_json = options.run_dir + "/job.json";
  size_t listed = 0;
  while (listed < static_cast<size_t>(members) &&
         std::chrono::steady_clock::now() < registered + std::chrono::seconds(10)) {
    std::ifstream in(job_json);
    const Json j = Json::parse(in, nullptr, false);
    listed = j.is_object() ? j["members"].size() : 0;
  }
  EXPECT_EQ(listed, static_cast<size_t>(members));
  // The builds, as the coordinator counts them on /api/job (published each second).
  const std::string http = service.http_address();
  const std::string auth = "Authorization: Bearer " + service.http_token() + "\r\n";
  int64_t builds = -1;
  while (builds < 0 && std::chrono::steady_clock::now() < registered + std::chrono::seconds(10)) {
    const Json j = Json::parse(HttpGet(http, "/api/job", auth).body, nullptr, false);
    if (j.is_object() && j["control_plane"].is_object()) {
      builds = j["control_plane"]["job_json"]["count"].get<int64_t>();
    }
  }
  EXPECT_GT(builds, 0);
  EXPECT_LT(builds, members / 5) << "job.json rebuilt for most registrations";
  EXPECT_GE(StopDrainSeconds(4096), 1.5);  // the STOP frames' time grows with the members
  EXPECT_EQ(CoordinatorConnections(10), 512);
  EXPECT_EQ(CoordinatorConnections(8192), 8256);
}

}  // namespace
}  // namespace flexmoe
