// Helpers for the loader tests: a synthetic prepared dataset, a loader server on a thread,
// batch comparison, raw TCP sockets and a `flexmoe loader` subprocess.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data_loader/batch_source.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/loader_server.h"
#include "data_loader/shard.h"
#include "proto/config.pb.h"

namespace flexmoe::testing {

// A synthetic layout-A dataset with modalities m0, m1, ... of the given feature counts,
// generated and prepared under `dir` (raw/ and prepared/), then opened and decoded.
struct TestDataset {
  TestDataset(const std::string& dir, int samples, const std::vector<int>& features);
  std::string config_text;  // the config it was made with (no cluster section)
  PreparedDataset prepared;
  std::unique_ptr<DecodedDataset> data;
};

// A LoaderServer serving on its own thread; stopped and joined at scope exit.
class ServerThread {
 public:
  ServerThread(const TestDataset& dataset, LoaderServerOptions options);
  ~ServerThread();
  LoaderServer& server() { return server_; }
  std::string address() const { return server_.address(); }

 private:
  LoaderServer server_;
  std::thread thread_;
};

// "" when the batches are equal field by field, else what differs.
std::string DiffBatches(const DecodedBatch& a, const DecodedBatch& b);

// Streams epoch `epoch` from `first_step` out of both sources; "" when both yield the same
// number of steps and the same batches, else the first difference.
std::string DiffEpochs(BatchSource* expected, BatchSource* actual, int epoch,
                       int64_t first_step = 0);

// A blocking TCP socket connected to HOST:PORT (-1 on failure), with send/receive helpers
// bounded by deadlines.
// `receive_buffer` > 0 sets SO_RCVBUF before connecting.
int ConnectTcp(const std::string& address, int receive_buffer = 0);
bool SendAll(int fd, const std::string& bytes);
// Reads exactly n bytes within timeout_s; false on EOF, error or timeout.
bool ReadExactly(int fd, size_t n, std::string* out, double timeout_s);
// True when the peer closes the connection (EOF or reset) within timeout_s; data before the
// close is discarded.
bool WaitForClose(int fd, double timeout_s);

// The process's resident set size in bytes (from /proc/self/statm).
size_t ResidentBytes();

// A child process whose stdout is a pipe; killed (SIGKILL) and reaped at scope exit.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  // The next stdout line, waiting at most timeout_s ("" on timeout or EOF).
  std::string ReadLine(double timeout_s);
  void Kill();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffered_;
};

}  // namespace flexmoe::testing
