// Loader test helpers (loader_test_util.h).
#include "tests/data_loader/loader_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "data_loader/prepare.h"
#include "data_loader/synth.h"
#include "proto/config_loader.h"

namespace flexmoe::testing {
namespace {

using Clock = std::chrono::steady_clock;

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

Clock::time_point DeadlineIn(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::string ConfigText(const std::string& dir, int samples, const std::vector<int>& features) {
  std::ostringstream text;
  text << "data { layout: PER_MODALITY_CSV input: \"" << dir << "/raw\" prepared_dir: \"" << dir
       << "/prepared\" num_classes: 3 ";
  for (size_t m = 0; m < features.size(); ++m) {
    text << "modalities { name: \"m" << m << "\" synth_features: " << features[m] << " } ";
  }
  text << "} model { num_experts: 8 top_k: 2 } synth { num_samples: " << samples
       << " seed: 11 min_per_combination: 3 }";
  return text.str();
}

}  // namespace

TestDataset::TestDataset(const std::string& dir, int samples, const std::vector<int>& features)
    : config_text(ConfigText(dir, samples, features)) {
  config::Config config = ParseConfig(config_text, "loader_test.textproto", {});
  GenerateSynthetic(config, dir + "/raw");
  PrepareDataset(config, dir + "/prepared", nullptr);
  prepared = PreparedDataset::Open(dir + "/prepared");
  data = std::make_unique<DecodedDataset>(prepared);
}

ServerThread::ServerThread(const TestDataset& dataset, LoaderServerOptions options)
    : server_(dataset.prepared, *dataset.data, std::move(options)),
      thread_([this] { server_.Run(); }) {}

ServerThread::~ServerThread() {
  server_.Stop();
  thread_.join();
}

std::string DiffBatches(const DecodedBatch& a, const DecodedBatch& b) {
  if (a.size != b.size) return "size " + std::to_string(a.size) + " vs " + std::to_string(b.size);
  if (a.features != b.features) return "features differ";
  if (a.observed != b.observed) return "observed differs";
  if (a.combination != b.combination) return "combination differs";
  if (a.label != b.label) return "label differs";
  if (a.sample != b.sample) return "sample differs";
  if (a.weight != b.weight) return "weight differs";
  if (a.global_label_weight != b.global_label_weight) return "global_label_weight differs";
  return "";
}

std::string DiffEpochs(BatchSource* expected, BatchSource* actual, int epoch, int64_t first_step) {
  expected->StartEpoch(epoch, first_step);
  actual->StartEpoch(epoch, first_step);
  if (expected->steps_in_epoch() != actual->steps_in_epoch()) {
    return "steps " + std::to_string(expected->steps_in_epoch()) + " vs " +
           std::to_string(actual->steps_in_epoch());
  }
  DecodedBatch a, b;
  for (int64_t step = first_step;; ++step) {
    const bool more_a = expected->Next(&a);
    const bool more_b = actual->Next(&b);
    if (more_a != more_b) return "epoch ends differ at step " + std::to_string(step);
    if (!more_a) {
      if (step != expected->steps_in_epoch()) return "ended early at " + std::to_string(step);
      return "";
    }
    std::string diff = DiffBatches(a, b);
    if (!diff.empty()) return "step " + std::to_string(step) + ": " + diff;
  }
}

int ConnectTcp(const std::string& address, int receive_buffer) {
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  if (::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) != 1) return -1;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool ReadExactly(int fd, size_t n, std::string* out, double timeout_s) {
  out->assign(n, '\0');
  const auto deadline = DeadlineIn(timeout_s);
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    const int left = MillisLeft(deadline);
    if (left == 0 || ::poll(&p, 1, left) <= 0) return false;
    ssize_t r = ::recv(fd, &(*out)[got], n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool WaitForClose(int fd, double timeout_s) {
  const auto deadline = DeadlineIn(timeout_s);
  char buffer[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int left = MillisLeft(deadline);
    if (left == 0 || ::poll(&p, 1, left) <= 0) return false;
    ssize_t r = ::recv(fd, buffer, sizeof(buffer), 0);
    if (r <= 0) return true;
  }
}

size_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  size_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe(fds) != 0) return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  out_fd_ = fds[0];
}

ChildProcess::~ChildProcess() {
  Kill();
  if (out_fd_ >= 0) ::close(out_fd_);
}

std::string ChildProcess::ReadLine(double timeout_s) {
  const auto deadline = DeadlineIn(timeout_s);
  for (;;) {
    const size_t newline = buffered_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      return line;
    }
    pollfd p{out_fd_, POLLIN, 0};
    const int left = MillisLeft(deadline);
    if (out_fd_ < 0 || left == 0 || ::poll(&p, 1, left) <= 0) return "";
    char buffer[1024];
    ssize_t n = ::read(out_fd_, buffer, sizeof(buffer));
    if (n <= 0) return "";
    buffered_.append(buffer, static_cast<size_t>(n));
  }
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace flexmoe::testing
