// A progress line for long work on rank 0: "ingest  420/1000 patients  35.1/s  ETA 17s".
// Redrawn in place on a terminal, printed every few seconds otherwise (logs, Slurm).
#pragma once

#include <chrono>
#include <string>

namespace angiotrain {

class ProgressLine {
 public:
  // `enabled` false makes every call a no-op (ranks other than 0, --quiet).
  ProgressLine(std::string what, long total, std::string unit, bool enabled);
  // Reports that `done` of `total` units are complete (monotone).
  void Update(long done);
  // Prints the final line with the overall rate.
  void Finish();

 private:
  void Print(long done, bool final_line);
  std::string what_, unit_;
  long total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool finished_ = false;
};

}  // namespace angiotrain
