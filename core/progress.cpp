// Progress line. See progress.h.
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace angiotrain {

ProgressLine::ProgressLine(std::string what, long total, std::string unit, bool enabled)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), enabled_(enabled),
      tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()), last_print_(start_) {}

void ProgressLine::Update(long done) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  if (since < (tty_ ? 0.2 : 5.0)) return;
  last_print_ = now;
  Print(done, false);
}

void ProgressLine::Finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  Print(total_, true);
}

void ProgressLine::Print(long done, bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? done / elapsed : 0.0;
  char eta[32] = "";
  if (!final_line && rate > 0 && done < total_) std::snprintf(eta, sizeof eta, "  ETA %.0fs", (total_ - done) / rate);
  std::fprintf(stderr, "%s%s %ld/%ld %s  %.1f/s  %.1fs%s%s", tty_ ? "\r" : "", what_.c_str(), done, total_,
               unit_.c_str(), rate, elapsed, eta, (final_line || !tty_) ? "\n" : "\033[K");
  std::fflush(stderr);
}

}  // namespace angiotrain
