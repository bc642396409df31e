// The one error type of angiotrain: a message that names the thing that failed (file, line,
// key) and what was expected. Commands catch it at the top and exit non-zero with the message.
#pragma once

#include <stdexcept>
#include <string>

namespace angiotrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// An error that every MPI rank raises identically (validation done on all ranks, or a failure
// agreed over MPI). The launcher prints it once, on rank 0, and exits without MPI_Abort.
class CollectiveError : public Error {
 public:
  explicit CollectiveError(const std::string& message) : Error(message) {}
};

// Error about one file: "PATH: problem". Use this form so every message starts with the file.
inline Error FileError(const std::string& path, const std::string& problem) {
  return Error(path + ": " + problem);
}

}  // namespace angiotrain
