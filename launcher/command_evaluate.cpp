// `angiotrain evaluate`: score a K-ium submission against the ground truth (experiments/evaluation/evaluation.h).
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/path_checks.h"
#include "experiments/evaluation/evaluation.h"
#include "launcher/commands.h"

namespace angiotrain {

namespace {

struct EvaluateOptions {
  std::string pred, truth, probabilities, json_path, format = "table";
};

void RunEvaluate(const EvaluateOptions& o) {
  // Checked on every rank, so that every rank fails alike.
  RequireFile(o.pred, "a submission CSV (output.csv)");
  RequireFile(o.truth, "a label CSV (groundtruth.csv)");
  if (!o.probabilities.empty()) RequireFile(o.probabilities, "a probabilities CSV (output.probabilities.csv)");
  RefuseOutputOverInput(o.json_path, {o.pred, o.truth, o.probabilities});
  // A single-process command; under mpirun only rank 0 reads, scores and prints.
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return;
  const EvaluationReport report = EvaluateSubmission(o.pred, o.truth, o.probabilities);
  const std::string json = FormatEvaluationJson(report);
  if (!o.json_path.empty()) WriteFileAtomically(o.json_path, json);
  const std::string out = o.format == "json" ? json : FormatEvaluationTable(report);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void AddEvaluateCommand(CLI::App& app) {
  auto o = std::make_shared<EvaluateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "evaluate", "Score a K-ium submission (output.csv) against the ground truth: Aneurysm AUROC, location accuracy "
                  "next to the no-location baseline, per-location precision/recall/F1, and with the probability "
                  "sidecar per-location AUROC and the RSNA 2025 weighted AUC");
  cmd->add_option("--pred", o->pred, "Submission: Index, Aneurysm probability, 21 locations as 0/1")->required();
  cmd->add_option("--truth", o->truth, "Ground truth with the same indices (K-ium label CSV)")->required();
  cmd->add_option("--probabilities", o->probabilities,
                  "Sidecar with the 21 location probabilities (output.probabilities.csv, written by predict)");
  cmd->add_option("--json", o->json_path, "Also write the figures as JSON to this file");
  cmd->add_option("--format", o->format, "What to print on stdout: table or json")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([o] { RunEvaluate(*o); });
}

}  // namespace angiotrain
