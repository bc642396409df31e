// Handing a batch script to Slurm: `sbatch --parsable SCRIPT`, run directly (argv, no shell),
// with an environment cleaned of any MPI launcher's variables.
#pragma once

#include <string>
#include <vector>

namespace angiotrain {

// The full path of `program` on PATH, or "" when it is not there.
std::string FindOnPath(const std::string& program);

// The path of sbatch; throws Error saying what is missing when Slurm's client commands are not
// on PATH (a command calls it before it writes anything).
std::string SbatchProgram();

// Submits `script_path` and returns the job id. Throws Error with a clear message when sbatch is
// not on PATH or refuses the job (its message included).
std::string SubmitBatchScript(const std::string& script_path);

// The environment a Slurm command gets from angiotrain: this process's, less OMPI_*, PMIX_*,
// OPAL_* and PRTE_* (set by MPI_Init; OMPI_MCA_* settings are kept), as NAME=VALUE entries.
std::vector<std::string> EnvironmentForSlurm();

}  // namespace angiotrain
