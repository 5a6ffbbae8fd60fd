// allreduce_bench: Communicator::AllReduce of float32 sums (MPI backend: a reduce-scatter,
// then an all-gather, both polled against the deadline) against a raw blocking
// MPI_Allreduce and against the earlier scheme, a reduce to rank 0 and a broadcast polled
// the same way, over a sweep of element counts (the gradient buckets' sizes).
//
//   mpirun -np 2 build/bench/allreduce_bench [--counts=8192,65536,220000,1000000]
//       [--iters=200]
//
// Time: per iteration the slowest rank's time after a barrier; the table shows the median
// over iterations. The variants run in rotating order per iteration. One JSON line per count.
#include <ATen/ATen.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster/base/allocator.h"
#include "cluster/base/error.h"
#include "cluster/comm/mpi_communicator.h"
#include "cluster/comm/mpi_session.h"

namespace flexmoe {
namespace {

// Polls a request as the Communicator does on a quiet machine (yielding between tests).
void Poll(MPI_Request* request) {
  int done = 0;
  while (MPI_Test(request, &done, MPI_STATUS_IGNORE), !done) std::this_thread::yield();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  KeepLargeAllocationsInTheHeap();
  MpiSession mpi(&argc, &argv);
  std::vector<int64_t> counts{8192, 65536, 220000, 1000000};
  int iters = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--counts=", 0) == 0) {
      counts.clear();
      std::stringstream in(arg.substr(9));
      for (std::string item; std::getline(in, item, ',');) counts.push_back(std::stoll(item));
    } else if (arg.rfind("--iters=", 0) == 0) {
      iters = std::stoi(arg.substr(8));
    } else {
      Fail(ErrorCode::kInvalidArgument, "unknown argument ", arg,
           " (expected --counts=N,N,... or --iters=N)");
    }
  }
  if (iters < 1) Fail(ErrorCode::kInvalidArgument, "--iters must be >= 1");
  auto comm = MakeMpiWorld(std::chrono::seconds(120));
  MPI_Comm raw;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw);
  const int rank = comm->rank();
  if (rank == 0) {
    std::printf(
        "# allreduce_bench: %d ranks, float32 sums, %d iterations; median of the "
        "slowest rank's time\n%10s | %10s %12s %10s | %8s %8s\n",
        comm->size(), iters, "count", "raw_us", "reduce+bcast", "ours_us", "vs_raw", "vs_r+b");
  }
  std::vector<std::string> json;
  for (int64_t count : counts) {
    at::Tensor buffer = at::ones({count}, at::kFloat);
    float* data = buffer.data_ptr<float>();
    const int n = static_cast<int>(count);
    std::vector<std::function<void()>> variants = {
        [&] { MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, raw); },
        [&] {
          MPI_Request request;
          MPI_Ireduce(rank == 0 ? MPI_IN_PLACE : data, rank == 0 ? data : nullptr, n, MPI_FLOAT,
                      MPI_SUM, 0, raw, &request);
          Poll(&request);
          MPI_Ibcast(data, n, MPI_FLOAT, 0, raw, &request);
          Poll(&request);
        },
        [&] { comm->AllReduce(buffer, ReduceOp::kSum); }};
    std::vector<std::vector<double>> seconds(variants.size());
    for (int i = 0; i < iters + 5; ++i) {
      for (size_t k = 0; k < variants.size(); ++k) {
        const size_t v = (i + k) % variants.size();
        buffer.fill_(1.0f);
        MPI_Barrier(raw);
        const auto start = std::chrono::steady_clock::now();
        variants[v]();
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, raw);
        if (i >= 5) seconds[v].push_back(s);  // five warm-up rounds
      }
    }
    const double raw_us = 1e6 * Median(seconds[0]), rb_us = 1e6 * Median(seconds[1]);
    const double ours_us = 1e6 * Median(seconds[2]);
    if (rank == 0) {
      std::printf("%10ld | %10.1f %12.1f %10.1f | %7.2fx %7.2fx\n", static_cast<long>(count),
                  raw_us, rb_us, ours_us, ours_us / raw_us, ours_us / rb_us);
      char line[256];
      std::snprintf(line, sizeof(line),
                    "{\"bench\":\"allreduce\",\"ranks\":%d,\"count\":%ld,\"raw_us\":%.1f,"
                    "\"reduce_bcast_us\":%.1f,\"ours_us\":%.1f}",
                    comm->size(), static_cast<long>(count), raw_us, rb_us, ours_us);
      json.push_back(line);
    }
  }
  if (rank == 0) {
    for (const std::string& line : json) std::printf("%s\n", line.c_str());
  }
  MPI_Comm_free(&raw);
  comm.reset();
  return 0;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  return flexmoe::RunReportingErrors("allreduce_bench", [&] { return flexmoe::Main(argc, argv); });
}
