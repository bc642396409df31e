// main() of every test executable: MPI is initialised once per process (singleton when not
// under mpirun) because the volume file and the communicators are MPI objects.
#include <gtest/gtest.h>
#include <mpi.h>

#include "tests/support/test_support.h"

int main(int argc, char** argv) {
  angiotrain::testing::SaveEnvironmentBeforeMpi();
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  int result = RUN_ALL_TESTS();
  MPI_Finalize();
  return result;
}
