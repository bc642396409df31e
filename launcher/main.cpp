// angiotrain: the one binary. Sets up MPI (every command may run under mpirun/srun), parses the
// subcommand, and turns any angiotrain::Error into "angiotrain: error: MESSAGE" and exit 1.
//
// Under mpirun, a failure every rank meets alike (a command-line error, a CollectiveError) is
// printed by rank 0 only and every rank leaves through MPI_Finalize with the same status; any
// other failure is printed by the rank that met it and ends the job with MPI_Abort, so no rank
// is left waiting in a collective.
#include <mpi.h>

#include <cstdio>
#include <exception>
#include <ostream>

#include "core/allocator.h"
#include "core/error.h"
#include "launcher/commands.h"

int main(int argc, char** argv) {
  angiotrain::TuneAllocatorForTensors();  // before any tensor exists (core/allocator.h)
  // THREAD_MULTIPLE: the volume reader prefetches on a background thread (MPI-IO) while the
  // trainer's thread runs collectives.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);

  CLI::App app{"angiotrain: train and run aneurysm detectors on cerebral DSA (K-ium layout)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "angiotrain 0.1.0");
  // One line per command; each lives in launcher/command_<name>.cpp.
#ifdef ANGIOTRAIN_WITH_OPENCV  // image decoding and drawing; off on bare GPU boxes
  angiotrain::AddSynthCommand(app);
  angiotrain::AddIngestCommand(app);
#endif
  angiotrain::AddInspectCommand(app);
  angiotrain::AddTrainCommand(app);
  angiotrain::AddPredictCommand(app);
  angiotrain::AddEvaluateCommand(app);
  angiotrain::AddSweepCommand(app);
  angiotrain::AddModelCommand(app);
  angiotrain::AddSlurmCommand(app);
  angiotrain::AddExportCommand(app);
  angiotrain::AddExplainCommand(app);
  angiotrain::AddReportCommand(app);

  int code = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // The same arguments on every rank: the same error (or --help) everywhere. Rank 0 prints it.
    std::ostream discard(nullptr);
    code = rank == 0 ? app.exit(e) : app.exit(e, discard, discard);
    MPI_Finalize();
    return code;
  } catch (const angiotrain::CollectiveError& e) {
    // Every rank raised it: one message, and a clean exit on all ranks.
    if (rank == 0) std::fprintf(stderr, "angiotrain: error: %s\n", e.what());
    MPI_Finalize();
    return 1;
  } catch (const std::exception& e) {
    // This rank alone failed (an angiotrain::Error or anything else): it says so, naming itself
    // when others run beside it, and MPI_Abort below ends the job. Objects that would need a
    // collective to close were left open while unwinding (std::uncaught_exceptions()).
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1 && rank != 0)
      std::fprintf(stderr, "angiotrain: error: rank %d of %d: %s\n", rank, size, e.what());
    else
      std::fprintf(stderr, "angiotrain: error: %s\n", e.what());
    std::fflush(stderr);
    code = 1;
  }
  if (code != 0) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    // One rank failing must not leave the others hanging in a collective.
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
  MPI_Finalize();
  return code;
}
