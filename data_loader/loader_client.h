// The worker side of the loader protocol (NOTE [loader protocol] in loader_server.h): a
// BatchSource that streams this worker's batches from a loader process over TCP.
//
// A background thread runs the connection (cluster/net's reconnecting ClientConnection) on
// its own io_context and decodes BATCH frames
// into a bounded prefetch queue; the client grants the loader one credit per free slot, so
// at most `prefetch` batches are in flight or buffered. When the connection drops, the
// thread reconnects and asks again from the step after the last batch it received, so the
// consumer sees every step exactly once. If the loader stays unreachable for
// connect_timeout_s (or sends nothing for read_timeout_s while batches are owed, then
// stays unreachable), the consumer's next call throws kUnavailable (or kDeadlineExceeded)
// naming the loader's address; batches already received are handed out first. A refusal
// by the loader (wrong token, bad request) throws at once with the loader's message.
//
// Threading: StartEpoch/Next/steps_in_epoch from one consumer thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data_loader/batch_source.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/folds.h"
#include "proto/config.pb.h"

namespace flexmoe {

struct LoaderClientOptions {
  std::string address;  // the loader's HOST:PORT
  std::string token;    // the job token
  std::string name;     // how the loader's log names this client, e.g. "worker 3"
  uint32_t split = 0;
  FoldOfData fold;   // cross-fitting: the fold whose data the loader plans over
  PlanOptions plan;  // seed, world_size, global_batch, remainder, batching (not epoch/phase)
  int warmup_epochs = 0;
  int worker = 0;
  int prefetch = 8;               // batches buffered ahead (and credits granted)
  double connect_timeout_s = 30;  // how long the loader may stay unreachable
  double read_timeout_s = 30;     // silence while batches are owed that counts as a drop
  uint32_t max_frame_bytes = 64u << 20;
  // The dataset this worker trains on: a loader whose WELCOME names another (sample count
  // or index CRC32C) is refused with kFailedPrecondition. Unchecked while check_dataset is
  // false.
  bool check_dataset = false;
  uint64_t expected_samples = 0;
  uint32_t expected_index_crc32c = 0;
};

// Options for worker `worker` of `world_size` from the job config: its loader is the one of
// cluster.loader_addresses on its own host (one loader per node), or, when its host has
// none, cluster.loader_addresses[worker % count]; the token from
// cluster.job_token_source, timeouts and frame limit from cluster, plan options from
// training. Throws kInvalidArgument when no loader address is configured.
LoaderClientOptions LoaderClientOptionsFromConfig(const config::Config& config, uint32_t split,
                                                  int worker, int world_size);

class LoaderClient : public BatchSource {
 public:
  // Starts the background thread; connects at the first StartEpoch. Throws
  // kInvalidArgument for malformed options.
  explicit LoaderClient(LoaderClientOptions options);
  // Stops and joins the background thread; never throws.
  ~LoaderClient() override;
  LoaderClient(const LoaderClient&) = delete;
  LoaderClient& operator=(const LoaderClient&) = delete;

  // Waits (at most connect_timeout_s + read_timeout_s) for the loader to accept the stream.
  void StartEpoch(int epoch, int64_t first_step) override;
  // Waits for the next batch, bounded as above per batch.
  bool Next(DecodedBatch* batch) override;
  int64_t steps_in_epoch() const override;

  const std::string& address() const;
  // Connections made after the first (reconnects); for tests and logs.
  int64_t reconnects() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe
