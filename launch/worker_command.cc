// The worker subcommand: MPI set-up, the world communicator, then the shared training loop
// with the experts sharded over the ranks.
#include "launch/worker_command.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "cluster/base/abort_signal.h"
#include "cluster/base/env.h"
#include "cluster/base/error.h"
#include "cluster/base/peak_memory.h"
#include "cluster/comm/gather_bytes.h"
#include "cluster/comm/mpi_communicator.h"
#include "cluster/comm/mpi_session.h"
#include "cluster/comm/nccl_communicator.h"
#include "cluster/comm/routed_communicator.h"
#include "cluster/coord/report_sink.h"
#include "data_loader/shard_samples.h"
#include "launch/cli/args.h"
#include "launch/membership.h"
#include "launch/preemption.h"
#include "launch/train_command.h"
#include "launch/train_job.h"
#include "launch/wait_policy.h"
#include "proto/config_loader.h"
#include "trainer/train/compute_threads.h"
#include "trainer/train/device.h"
#include "trainer/train/trainer.h"

namespace flexmoe {

namespace {

// Reports the step to the coordinator with the heartbeats, and worker 0 the checkpoints.
class StepReporter : public TrainHook {
 public:
  StepReporter(CoordinatorClient* client, CoordinatorReportSink* sink, int rank)
      : client_(client), sink_(sink), rank_(rank) {}
  void AfterStep(const StepReport& report) override {
    client_->SetStep(report.position.global_step);
  }
  void AfterCheckpoint(const std::string& dir, const TrainState&) override {
    if (rank_ == 0) sink_->Checkpointed(dir);
  }
  void PlacementChanged(const PlacementMap& placement, const TrainPosition& after) override {
    if (rank_ == 0) client_->ReportPlacement(placement, after.global_step);
  }

 private:
  CoordinatorClient* client_;
  CoordinatorReportSink* sink_;
  int rank_;
};

// srun without an MPI plugin starts N singletons, each believing it is rank 0 of 1 (Open
// MPI's own refusal, when it has one, does not say what to do). Checked before MPI starts:
// a rank that mpirun or an srun MPI plugin started has their variables.
void RefuseRanksWithoutMpi() {
  const std::string tasks = GetEnv(kEnvSlurmStepTasks);
  if (tasks.empty() || std::atoi(tasks.c_str()) <= 1 || GetEnv(kEnvSlurmProcId).empty()) return;
  for (const char* mpi : {kEnvOmpiWorldSize, kEnvPmixRank, kEnvPmiRank}) {
    if (!GetEnv(mpi).empty()) return;
  }
  Fail(ErrorCode::kInvalidArgument, "srun started ", tasks, " tasks without an MPI plugin: ",
       "MPI would see a world of 1 in each (every rank would be rank 0); start the workers ",
       "with srun --mpi=pmix, or with mpirun inside the allocation (launch/slurm/train.sbatch)");
}

// Training after the membership: the run directory, placement and checkpoint schedule (the
// coordinator's, when there is one), the hooks, and the seed loop.
int TrainWithMembership(const config::Config& config_in, const std::string& path, const Args& args,
                        Communicator& world_ref, int local_rank, CoordinatorClient* coordinator);

// This rank's index among the ranks of its node (0 when no launcher says).
int LocalRank() {
  for (const char* name : {kEnvOmpiLocalRank, kEnvSlurmLocalId, kEnvMpichLocalRank}) {
    const std::string value = GetEnv(name);
    if (!value.empty()) return std::atoi(value.c_str());
  }
  return 0;
}

// The workers' world for training.device and cluster.backend (docs/gpu.md). On the host:
// the MPI world itself (null here). On CUDA: the MPI world for host tensors, routed beside
// an NCCL group on this rank's GPU (AUTO in a build with NCCL, or NCCL) or beside none
// (MPI: CUDA tensors staged through host memory).
std::unique_ptr<Communicator> MakeDeviceWorld(Communicator& mpi, const config::Config& config,
                                              int local_rank, std::chrono::milliseconds timeout) {
  CheckDeviceSupport(config);
  if (config.training().device() != config::TrainingConfig::CUDA) return nullptr;
  const c10::Device device = TrainingDevice(config.training().device(), local_rank);
  const config::ClusterConfig::Backend backend = config.cluster().backend();
  std::unique_ptr<Communicator> nccl;
#ifdef FLEXMOE_HAVE_NCCL
  if (backend != config::ClusterConfig::MPI)
    nccl = MakeNcclCommunicator(mpi, device.index(), timeout);
#endif
  if (mpi.rank() == 0) {
    std::cout << "device: " << DeviceName(device) << " on worker 0 (local rank " << local_rank
              << "); collectives: "
              << (nccl ? "NCCL for CUDA tensors, MPI for host values"
                       : "MPI, CUDA tensors staged through host memory")
              << "\n";
  }
  return std::make_unique<RoutedCommunicator>(mpi, std::move(nccl));
}

int RunWorker(MpiSession& mpi, AbortSignal& abort, int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::string path = args.Get("config");
  config::Config config = LoadConfig(path, args.overrides);
  auto timeout = std::chrono::milliseconds(
      static_cast<int64_t>(config.cluster().collective_timeout_s() * 1000));
  std::unique_ptr<Communicator> mpi_world = MakeMpiWorld(timeout, &abort);
  const int local_rank = LocalRank();
  std::unique_ptr<Communicator> device_world =
      MakeDeviceWorld(*mpi_world, config, local_rank, timeout);
  Communicator* world = device_world ? device_world.get() : mpi_world.get();
  const int rank = world->rank();
  // With a coordinator: register, take its run directory and placement, and stop the
  // moment it says so (the communicator's waits watch `abort`).
  std::unique_ptr<CoordinatorClient> coordinator =
      JoinCoordinator(config, coordinator::WORKER, rank, world->size(), 0,
                      [&abort, rank](bool finished, const std::string& line, int exit) {
                        if (finished) return;
                        PrintErrorLine("flexmoe worker " + std::to_string(rank) + ": " + line);
                        abort.Raise(line, exit);
                        // A worker busy outside a collective leaves within the grace period anyway.
                        std::thread([exit] {
                          std::this_thread::sleep_for(std::chrono::seconds(5));
                          std::_Exit(exit);
                        }).detach();
                      });
  try {
    return TrainWithMembership(config, path, args, *world, local_rank, coordinator.get());
  } catch (const Error& e) {
    // The coordinator learns why before this rank goes: the job ends naming this error,
    // and every rank exits with its status.
    if (coordinator && !abort.raised()) {
      coordinator->LeaveWithError(static_cast<int>(e.code()), e.what());
    }
    throw;
  }
}

int TrainWithMembership(const config::Config& config_in, const std::string& path, const Args& args,
                        Communicator& world_ref, int local_rank, CoordinatorClient* coordinator) {
  config::Config config = config_in;
  Communicator* world = &world_ref;
  const int rank = world->rank();
  const bool resume = args.Has("resume");
  std::string run_dir;
  PlacementMap placement;
  if (coordinator) {
    run_dir = coordinator->accepted().run_dir();
    placement = coordinator->placement();
    // The coordinator decides the job's checkpoints.
    const coordinator::Accepted& accepted = coordinator->accepted();
    config.mutable_checkpoint()->set_every_steps(accepted.checkpoint_every_steps());
    config.mutable_checkpoint()->set_every_epochs(accepted.checkpoint_every_epochs());
    config.mutable_checkpoint()->set_keep_last(accepted.checkpoint_keep_last());
  } else {
    // Every rank writes into the run directory: rank 0's choice is everyone's.
    RunOnRankZero(world, [&] { run_dir = RunDirFor(config, resume); });
    BroadcastBytes(*world, &run_dir, 0);
  }
  // Fed by loaders, a worker holds no samples (the metadata only, and the index when it
  // cross-fits: its folds' split sizes); without, it reads the shards on demand within
  // data.loader_cache_mb.
  const bool fed_by_loaders = config.cluster().loader_addresses_size() > 0;
  const PreparedDataset prepared =
      OpenPrepared(config, path,
                   fed_by_loaders && !config.training().cross_fit() ? PreparedParts::kMeta
                                                                    : PreparedParts::kServing);
  std::unique_ptr<ShardSamples> samples;
  if (!fed_by_loaders) {
    samples = std::make_unique<ShardSamples>(
        prepared, static_cast<uint64_t>(config.data().loader_cache_mb()) << 20);
  }
  TrainOptions options;
  options.world = world;
  options.expert_parallel_degree = config.cluster().expert_parallel_degree();
  options.threads = args.GetInt("threads", 1);
  options.local_rank = local_rank;
  options.redraw_progress = GetEnv(kEnvProgress) == "redraw";
  options.restart = args.GetInt("restart", 0);
  options.restart_reason = args.Get("restart-reason");
  options.log = rank == 0 ? &std::cout : nullptr;
  if (coordinator && world->size() > 1) options.placement = &placement;
  // With a coordinator it is the job's one writer of the metrics.
  std::unique_ptr<CoordinatorReportSink> sink;
  if (coordinator) sink = std::make_unique<CoordinatorReportSink>(coordinator);
  options.metrics_sink = sink.get();
  StepReporter reporter(coordinator, sink.get(), rank);
  if (coordinator) options.hooks.push_back(&reporter);
  PreemptionHook preemption(coordinator, rank);
  options.hooks.push_back(&preemption);
  if (rank == 0) {
    std::cout << "BLAS: " << BlasDescription() << "; OpenMP wait policy "
              << GetEnv(kEnvOmpWaitPolicy) << "\n"
              << "worker 0 of " << world->size() << ": training on " << config.data().prepared_dir()
              << " (" << prepared.size() << " samples), experts sharded over "
              << (options.expert_parallel_degree > 0 ? options.expert_parallel_degree
                                                     : world->size())
              << " ranks, "
              << (config.training().precision() == config::TrainingConfig::BF16
                      ? "bf16 products (fp32 parameters and state), "
                      : "")
              << "run directory " << run_dir
              << (coordinator ? ", coordinator " + config.cluster().coordinator() : "") << "\n";
  }
  const int status = TrainSeeds(config, prepared, samples.get(), run_dir, resume, options,
                                rank == 0 ? &std::cout : nullptr);
  // Said before leaving: the job may end this process as soon as its last member has left.
  LOG(INFO) << "worker " << world->rank() << ": peak resident memory " << PeakResidentMb() << " MB";
  if (coordinator) coordinator->Leave();
  return status;
}

}  // namespace

int WorkerCommand(int argc, char** argv) {
  RefuseRanksWithoutMpi();
  // The collectives' waits sleep in steps of 5-100 us once the cores are shared
  // (cluster/comm/deadline.h): the kernel's default 50 us timer slack would stretch each.
  ::prctl(PR_SET_TIMERSLACK, 1000UL);
  EnsureMpiYieldsWhenIdle();  // before MPI_Init reads it
  MpiSession mpi(&argc, &argv);
  CatchPreemptionSignals();
  AbortSignal abort;
  try {
    return RunWorker(mpi, abort, argc, argv);
  } catch (const Error& e) {
    // One line (a coordinator's stop was reported when it came), then every rank ends
    // through MPI_Abort: MPI_Finalize would wait for ranks that may never come.
    if (!abort.raised()) {
      PrintErrorLine("flexmoe worker " + std::to_string(mpi.world_rank()) + ": error: " + e.what());
    }
    mpi.Abort(abort.raised() ? abort.exit_status() : ExitStatusFor(e.code()));
  } catch (const std::exception& e) {
    PrintErrorLine("flexmoe worker " + std::to_string(mpi.world_rank()) +
                   ": internal error: " + e.what());
    mpi.Abort(1);
  }
}

}  // namespace flexmoe
