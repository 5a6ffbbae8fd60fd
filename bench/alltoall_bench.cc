// alltoall_bench: Communicator::AllToAll (MPI backend: split validation + MPI_Ialltoallv,
// polled) against a raw blocking MPI_Alltoallv of the same rows, over a sweep of tokens (rows
// per rank) x D (float32 row width), with even or MoE-skewed splits. Prints a table and one
// JSON line per size (time, bytes, algbw, busbw with factor (n-1)/n, our overhead vs raw).
//
//   mpirun -np 4 --oversubscribe build/bench/alltoall_bench [--tokens=1024,4096,...]
//       [--dims=128,256,512,1024] [--modes=even,skewed] [--skew=0.5] [--warmup=2] [--iters=10]
//       [--max_mib=64] [--timeout_s=120] [--check=1] [--agreed=0|1]
//
// Variants: raw = MPI_Alltoallv into a preallocated output; raw+alloc = the same into a fresh
// at::empty output (ours returns a new tensor, so it pays the first-touch page faults too);
// ours = Communicator::AllToAll. vs_raw / vs_alloc = our overhead against each.
// Time: per iteration the slowest rank's time after a barrier; the table shows the median over
// iterations; the min: columns show the fastest iteration, less disturbed by other load on a
// shared host (JSON also has the mean). The variants run in rotating order per iteration.
// bytes = tokens * D * 4 (each rank's send buffer, as nccl-tests counts all-to-all size).
#include <ATen/ATen.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "cluster/base/allocator.h"
#include "cluster/base/error.h"
#include "cluster/comm/mpi_communicator.h"
#include "cluster/comm/mpi_session.h"

namespace flexmoe {
namespace {

struct Flags {
  std::vector<int64_t> tokens{1024, 4096, 16384, 65536, 262144, 1048576};
  std::vector<int64_t> dims{128, 256, 512, 1024};
  std::vector<std::string> modes{"even", "skewed"};
  double skew = 0.5;  // share of every rank's tokens routed to the hot rank 0 (skewed mode)
  int warmup = 2;
  int iters = 10;
  int64_t max_mib = 64;  // per-rank send buffer cap; larger sizes are skipped
  int timeout_s = 120;
  bool check = true;
  // 1: the splits are agreed (CollectiveOptions::splits_agreed), as in the MoE exchange,
  // whose splits come from counts all ranks exchanged before; 0: full validation.
  bool agreed = false;
};

template <typename T>
std::vector<T> ParseList(const std::string& text) {
  std::vector<T> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if constexpr (std::is_same_v<T, std::string>) {
      out.push_back(item);
    } else {
      out.push_back(std::stoll(item));
    }
  }
  return out;
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      Fail(ErrorCode::kInvalidArgument, "alltoall_bench: expected --name=value, got ", arg);
    }
    const std::string name = arg.substr(2, eq - 2);
    const std::string value = arg.substr(eq + 1);
    if (name == "tokens") {
      flags.tokens = ParseList<int64_t>(value);
    } else if (name == "dims") {
      flags.dims = ParseList<int64_t>(value);
    } else if (name == "modes") {
      flags.modes = ParseList<std::string>(value);
    } else if (name == "skew") {
      flags.skew = std::stod(value);
    } else if (name == "warmup") {
      flags.warmup = std::stoi(value);
    } else if (name == "iters") {
      flags.iters = std::stoi(value);
    } else if (name == "agreed") {
      flags.agreed = std::stoll(value) != 0;
    } else if (name == "max_mib") {
      flags.max_mib = std::stoll(value);
    } else if (name == "timeout_s") {
      flags.timeout_s = std::stoi(value);
    } else if (name == "check") {
      flags.check = value != "0";
    } else {
      Fail(ErrorCode::kInvalidArgument, "alltoall_bench: unknown flag --", name);
    }
  }
  if (flags.iters < 1 || flags.warmup < 0 || flags.skew < 0 || flags.skew > 1) {
    Fail(ErrorCode::kInvalidArgument,
         "alltoall_bench: need --iters >= 1, --warmup >= 0 and "
         "--skew in [0, 1]");
  }
  for (const std::string& mode : flags.modes) {
    if (mode != "even" && mode != "skewed") {
      Fail(ErrorCode::kInvalidArgument, "alltoall_bench: unknown mode ", mode);
    }
  }
  return flags;
}

// Rows rank `src` sends to each rank: even, or `skew` of them to rank 0 and the rest even.
std::vector<int64_t> SendRows(int64_t tokens, int size, const std::string& mode, double skew) {
  std::vector<int64_t> rows(size, 0);
  if (mode == "even" || size == 1) {
    for (int p = 0; p < size; ++p) rows[p] = tokens / size + (p < tokens % size ? 1 : 0);
    return rows;
  }
  rows[0] = static_cast<int64_t>(static_cast<double>(tokens) * skew);
  const int64_t rest = tokens - rows[0];
  for (int p = 1; p < size; ++p) {
    rows[p] = rest / (size - 1) + (p - 1 < rest % (size - 1) ? 1 : 0);
  }
  return rows;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double Mean(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0) / values.size();
}

// Times of one variant over the timed iterations (the slowest rank's, per iteration).
struct Times {
  std::vector<double> seconds;
  double median() const { return Median(seconds); }
  double mean() const { return Mean(seconds); }
  double min() const { return *std::min_element(seconds.begin(), seconds.end()); }
};

// The variants, in this order: raw MPI_Alltoallv into a preallocated output; raw into a fresh
// at::empty output (what any API returning a new tensor pays); ours.
std::vector<Times> RunOne(Communicator& comm, MPI_Comm raw_comm, int64_t tokens, int64_t dim,
                          const std::vector<int64_t>& send, const std::vector<int64_t>& recv,
                          const Flags& flags, bool* check_ok) {
  const int size = comm.size();
  const int64_t recv_total = std::accumulate(recv.begin(), recv.end(), int64_t{0});
  at::Tensor input = at::rand({tokens, dim});
  at::Tensor raw_out = at::empty({recv_total, dim});
  std::vector<int> send_counts(size), send_displs(size), recv_counts(size), recv_displs(size);
  for (int p = 0, so = 0, ro = 0; p < size; ++p) {
    send_counts[p] = static_cast<int>(send[p]);
    recv_counts[p] = static_cast<int>(recv[p]);
    send_displs[p] = so;
    recv_displs[p] = ro;
    so += send_counts[p];
    ro += recv_counts[p];
  }
  MPI_Datatype row;
  MPI_Type_contiguous(static_cast<int>(dim), MPI_FLOAT, &row);
  MPI_Type_commit(&row);
  CollectiveOptions options;
  options.timeout = std::chrono::seconds(flags.timeout_s);
  options.splits_agreed = flags.agreed;

  at::Tensor fresh_out;
  at::Tensor ours_out;
  auto raw_into = [&](at::Tensor& out) {
    MPI_Alltoallv(input.data_ptr(), send_counts.data(), send_displs.data(), row, out.data_ptr(),
                  recv_counts.data(), recv_displs.data(), row, raw_comm);
  };
  const std::vector<std::function<void()>> variants = {
      [&] { raw_into(raw_out); },
      [&] {
        // Allocate before the previous output is released, as `ours_out = AllToAll(..)` does.
        at::Tensor out = at::empty({recv_total, dim});
        raw_into(out);
        fresh_out = out;
      },
      [&] { ours_out = comm.AllToAll(input, send, recv, options); },
  };
  auto timed = [&](const std::function<void()>& op) {
    MPI_Barrier(raw_comm);
    const auto start = std::chrono::steady_clock::now();
    op();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (int i = 0; i < flags.warmup; ++i) {
    for (const auto& variant : variants) timed(variant);
  }
  if (flags.check) {
    variants[0]();
    variants[2]();
    int ok = ours_out.nbytes() == raw_out.nbytes() &&
             std::memcmp(ours_out.data_ptr(), raw_out.data_ptr(), raw_out.nbytes()) == 0;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, raw_comm);
    *check_ok = *check_ok && ok;
  }
  std::vector<Times> times(variants.size());
  for (int i = 0; i < flags.iters; ++i) {
    // Rotate the order every iteration so that no variant always follows another.
    for (size_t k = 0; k < variants.size(); ++k) {
      const size_t v = (i + k) % variants.size();
      times[v].seconds.push_back(timed(variants[v]));
    }
  }
  MPI_Type_free(&row);
  for (Times& t : times) {
    MPI_Allreduce(MPI_IN_PLACE, t.seconds.data(), flags.iters, MPI_DOUBLE, MPI_MAX, raw_comm);
  }
  return times;
}

int Main(int argc, char** argv) {
  KeepLargeAllocationsInTheHeap();
  MpiSession mpi(&argc, &argv);
  const Flags flags = ParseFlags(argc, argv);
  auto comm = MakeMpiWorld(std::chrono::seconds(flags.timeout_s));
  MPI_Comm raw_comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw_comm);
  const int rank = comm->rank();
  const int size = comm->size();
  const double bus_factor = size > 1 ? static_cast<double>(size - 1) / size : 0.0;
  if (rank == 0) {
    std::printf(
        "# alltoall_bench: %d ranks, float32 rows, warmup %d, iters %d; time = median over "
        "iterations of the slowest rank; algbw/busbw in GB/s (1e9 B/s) for ours\n",
        size, flags.warmup, flags.iters);
    std::printf("%-7s %8s %5s %11s | %9s %9s %9s %8s %8s | %9s %9s %8s | %7s %7s\n", "mode",
                "tokens", "D", "bytes/rank", "raw_us", "raw+alloc", "ours_us", "vs_raw", "vs_alloc",
                "min:alloc", "min:ours", "vs_alloc", "algbw", "busbw");
  }
  bool check_ok = true;
  std::vector<std::string> json;
  for (const std::string& mode : flags.modes) {
    for (int64_t tokens : flags.tokens) {
      for (int64_t dim : flags.dims) {
        const int64_t bytes = tokens * dim * 4;
        if (bytes > flags.max_mib * 1024 * 1024) {
          if (rank == 0) {
            std::printf("%-7s %8ld %5ld %11ld   skipped (above --max_mib=%ld)\n", mode.c_str(),
                        static_cast<long>(tokens), static_cast<long>(dim), static_cast<long>(bytes),
                        static_cast<long>(flags.max_mib));
          }
          continue;
        }
        const std::vector<int64_t> send = SendRows(tokens, size, mode, flags.skew);
        std::vector<int64_t> recv(size);  // every rank sends the same pattern
        for (int p = 0; p < size; ++p) recv[p] = send[rank];
        const std::vector<Times> t =
            RunOne(*comm, raw_comm, tokens, dim, send, recv, flags, &check_ok);
        const Times& raw = t[0];
        const Times& fresh = t[1];
        const Times& ours = t[2];
        const double algbw = bytes / ours.median() / 1e9;
        const double raw_algbw = bytes / raw.median() / 1e9;
        const double vs_raw = (ours.median() / raw.median() - 1.0) * 100.0;
        const double vs_alloc = (ours.median() / fresh.median() - 1.0) * 100.0;
        if (rank == 0) {
          std::printf(
              "%-7s %8ld %5ld %11ld | %9.1f %9.1f %9.1f %7.1f%% %7.1f%% | %9.1f %9.1f %7.1f%% | "
              "%7.3f %7.3f\n",
              mode.c_str(), static_cast<long>(tokens), static_cast<long>(dim),
              static_cast<long>(bytes), raw.median() * 1e6, fresh.median() * 1e6,
              ours.median() * 1e6, vs_raw, vs_alloc, fresh.min() * 1e6, ours.min() * 1e6,
              (ours.min() / fresh.min() - 1.0) * 100.0, algbw, algbw * bus_factor);
          char line[768];
          std::snprintf(
              line, sizeof(line),
              "{\"bench\":\"alltoall\",\"backend\":\"mpi\",\"ranks\":%d,\"mode\":\"%s\","
              "\"tokens\":%ld,\"dim\":%ld,\"bytes\":%ld,\"raw_us\":%.1f,\"raw_min_us\":%.1f,"
              "\"raw_alloc_us\":%.1f,\"raw_alloc_min_us\":%.1f,\"ours_us\":%.1f,"
              "\"ours_mean_us\":%.1f,\"ours_min_us\":%.1f,\"algbw_gbps\":%.4f,"
              "\"busbw_gbps\":%.4f,\"raw_algbw_gbps\":%.4f,\"raw_busbw_gbps\":%.4f,"
              "\"overhead_pct\":%.2f,\"overhead_vs_alloc_pct\":%.2f}",
              size, mode.c_str(), static_cast<long>(tokens), static_cast<long>(dim),
              static_cast<long>(bytes), raw.median() * 1e6, raw.min() * 1e6, fresh.median() * 1e6,
              fresh.min() * 1e6, ours.median() * 1e6, ours.mean() * 1e6, ours.min() * 1e6, algbw,
              algbw * bus_factor, raw_algbw, raw_algbw * bus_factor, vs_raw, vs_alloc);
          json.push_back(line);
        }
      }
    }
  }
  if (rank == 0) {
    for (const std::string& line : json) std::printf("%s\n", line.c_str());
    if (flags.check)
      std::printf("# check: ours == raw MPI_Alltoallv: %s\n", check_ok ? "ok" : "FAILED");
  }
  MPI_Comm_free(&raw_comm);
  comm.reset();
  return check_ok ? 0 : 1;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  return flexmoe::RunReportingErrors("alltoall_bench", [&] { return flexmoe::Main(argc, argv); });
}
