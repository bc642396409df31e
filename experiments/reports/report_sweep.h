// `angiotrain report --sweep DIR`: the page of a sweep's trial store (experiments/sweeps/sweep_store.h),
// read from its files only: the ranked evaluations (trial x epochs x threshold rule) with a link
// to each trial's own page (report_run.h, written beside the trial's files), and the objective
// against each axis of the sweep, one series per epoch count.
#pragma once

#include <string>

namespace angiotrain {

struct SweepReportSummary {
  std::string path;        // the sweep's page
  int trial_pages = 0;     // trial pages written (trials that have a config.toml)
  int evaluations = 0;     // ranked rows
};

// Writes every trial's page (TRIAL/report.html, Grad-CAM examples: `examples` per kind over
// `layer`, "" for the report's default; RunReportOptions) and the
// sweep's page (`out`, default DIR/report.html), each atomically. Throws Error naming the store
// when it holds no plan.json. A trial whose page fails (e.g. it failed before any epoch) is
// listed without a link, with the reason.
SweepReportSummary WriteSweepReport(const std::string& store_dir, const std::string& out = "", int examples = 1,
                                    const std::string& layer = "");

// At the end of `sweep run` (rank 0): WriteSweepReport; a failure is printed as a warning and
// not thrown.
void WriteSweepReportAfterSweep(const std::string& store_dir);

}  // namespace angiotrain
