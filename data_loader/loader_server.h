// The loader server behind `flexmoe loader`: serves epoch plans of one prepared dataset to
// workers over TCP (frames: data_loader/loader_wire.h), gathering batches from any Samples
// (`flexmoe loader` gives it ShardSamples: shards read on demand through a bounded cache).
//
// NOTE [loader protocol], one connection:
//   1. The client sends HELLO with the job token. Anything else first, a wrong token, or no
//      HELLO within handshake_timeout_s: the server answers ERROR_REPLY (when it can) and
//      closes this connection only, logging why.
//   2. The server answers WELCOME (feature sizes, sample count, index checksum).
//   3. The client sends REQUEST (stream id, split, epoch, plan options, worker, world size,
//      first step, credits). The server answers STREAM_INFO (steps, dropped, padded), then
//      streams BATCH frames for steps first_step, first_step+1, ... of the worker's slices,
//      one frame per credit, then END_OF_EPOCH. A new REQUEST replaces the stream.
//   4. The client grants more batches with CREDIT (stream id, count) as it consumes them.
// Memory: a connection holds at most one encoded batch frame (plus small control frames);
// the next is built only once the previous is written to the socket and a credit is left,
// so a consumer that stops reading stalls its stream without growing the server.
// Any malformed frame (bad header, checksum, unparsable message, a length over
// max_frame_bytes, checked before allocating) closes that connection only.
//
// Threading: one io_context, run by the thread that calls Run(), owns the sockets and the
// sessions; batch frames (shard reads, gathering, encoding) are built on a pool of
// build_threads, so that different workers' batches are built in parallel and a disk read
// never holds up the network (`data` must allow concurrent Gather: ShardSamples and
// DecodedDataset do). A built frame goes back to the io thread, which sends it if its
// session is still there. Stop(), stats(), address() and DropConnectionsForTest() may be
// called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data_loader/samples.h"
#include "data_loader/shard.h"

namespace flexmoe {

struct LoaderServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT to bind; port 0 picks a free port
  std::string token;                   // the job token; required
  uint32_t max_frame_bytes = 64u << 20;
  double handshake_timeout_s = 10;  // for the HELLO after accepting
  double write_timeout_s = 30;      // a frame the peer does not take in this time closes it
  double idle_timeout_s = 600;      // a connection that sends nothing this long is closed
  uint32_t max_credits = 1024;      // credits above this are clipped
  int max_connections = 512;
  bool stop_on_signals = false;  // SIGINT and SIGTERM stop Run()
  std::string name = "loader";   // in its log lines: "loader 1" among several
  // Threads that build batch frames (shard reads, gathering, encoding) off the I/O thread,
  // so that different workers' batches are built in parallel; at least 1.
  int build_threads = 2;
};

struct LoaderServerStats {
  int64_t connections_accepted = 0;
  int64_t connections_open = 0;
  int64_t connections_refused = 0;  // closed for a protocol error, a bad token or a limit
  int64_t streams_started = 0;
  int64_t batches_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t queued_bytes = 0;       // frames built but not yet written, all connections
  uint64_t peak_queued_bytes = 0;  // the maximum of queued_bytes so far
};

class LoaderServer {
 public:
  // Binds and listens (throws kUnavailable naming the address when it cannot, and
  // kInvalidArgument for a malformed address or an empty token). `prepared` and `data`
  // must outlive the server.
  LoaderServer(const PreparedDataset& prepared, const Samples& data, LoaderServerOptions options);
  // Call after Run() has returned (Stop() and join the thread that runs it).
  ~LoaderServer();
  LoaderServer(const LoaderServer&) = delete;
  LoaderServer& operator=(const LoaderServer&) = delete;

  // The bound address, "HOST:PORT".
  std::string address() const;
  // Serves on the calling thread until Stop() (or a signal with stop_on_signals).
  void Run();
  // Closes the listener and every connection; Run() returns soon after.
  void Stop();
  LoaderServerStats stats() const;
  // Closes every client connection (for tests of the client's reconnect and resume).
  void DropConnectionsForTest();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe
