// MpiSession: MPI_Init_thread / MPI_Finalize for a program's main() (or a test main); the
// library itself never initialises MPI.
#pragma once

namespace flexmoe {

// Owns MPI's lifetime in one program. Create it first in main(), before any communicator,
// and let it outlive them all. It requests MPI_THREAD_FUNNELED (MPI calls from the main thread
// only) and throws kUnavailable when the library provides less. If MPI was already
// initialised by someone else, it neither initialises nor finalises.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int world_rank() const { return world_rank_; }
  // Ends every rank of the job through MPI_Abort (mpirun then ends): the exit path on
  // errors, where MPI_Finalize would wait for ranks that will never come. Never returns.
  [[noreturn]] void Abort(int code);
  int world_size() const { return world_size_; }

 private:
  bool owns_ = false;
  int world_rank_ = 0;
  int world_size_ = 1;
};

}  // namespace flexmoe
