// MPI initialisation and finalisation for main().
#include "cluster/comm/mpi_session.h"

#include <mpi.h>

#include <cstdlib>

#include "cluster/base/error.h"

namespace flexmoe {

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (initialized) {
    MPI_Query_thread(&provided);
  } else {
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      Fail(ErrorCode::kUnavailable, "MPI_Init_thread failed");
    }
    owns_ = true;
  }
  if (provided < MPI_THREAD_FUNNELED) {
    if (owns_) MPI_Finalize();
    Fail(ErrorCode::kUnavailable, "MPI provides thread level ", provided,
         ", below MPI_THREAD_FUNNELED");
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
}

void MpiSession::Abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; should it, leave without MPI_Finalize
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}

}  // namespace flexmoe
