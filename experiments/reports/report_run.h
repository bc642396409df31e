// `angiotrain report --run DIR`: one self-contained HTML page about a training run, read from the
// run's files only (no training code): output.dir/config.toml, metrics.jsonl, the validation
// probabilities and a checkpoint, and the labels of the volume it trained on. Where the run kept
// per-epoch evidence (experiments/training/epoch_evidence.h: best.json, best.pt, validation/epoch_NNN.csv) the figures
// are the best epoch's (best.pt, the model `predict --checkpoint best.pt` uses) and the page gives
// the last epoch's AUROC beside them; otherwise they are the last validation's
// (validation_predictions.csv) and last.pt's. The page says which.
//
// The page: the presence ROC curve with its AUROC and a bootstrap band (patients resampled),
// precision-recall, training and validation curves per epoch, per-location AUROC, accuracy,
// precision, recall and F1 next to the no-location baseline (chart and table), confusion counts
// for the run's threshold rule and for the seed's (mean+1std), Grad-CAM figures of a few true
// positives, false positives and false negatives of the validation set (over the stage that
// localises in the project's phantom measurement unless `layer` names another; the page says
// which), and the configuration.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace angiotrain {

struct RunReportOptions {
  std::string run_dir;  // output.dir of a training run
  std::string out;      // default: RUN/report.html
  std::string volume;   // labels; default: data.volume of RUN/config.toml
  int examples = 2;     // Grad-CAM figures per kind (true positive, false positive, false negative)
  int bootstrap = 1000;  // resamples of the patients for the AUROC interval and the ROC band
  std::string layer;     // Grad-CAM stage "features.N"; "": kReportGradCamLayer (report_grad_cam.h)
};

struct RunReportSummary {
  std::string path;              // the page written
  long patients = 0;             // validation patients scored
  std::optional<double> auroc;   // presence
  int figures = 0;               // Grad-CAM figures included
  int64_t epoch = 0;             // the epoch the figures come from (0: not known)
  std::string checkpoint;        // the checkpoint of the Grad-CAM figures (best.pt or last.pt)
};

// The report's default path for a run folder.
std::string RunReportPath(const std::string& run_dir);

// Reads the run and writes the page atomically. A run without validation predictions (no
// validation split, or stopped before the first epoch ended) gets the curves and configuration
// that exist and a note. Throws Error naming the file or key that is missing or unreadable.
RunReportSummary WriteRunReport(const RunReportOptions& options);

// At the end of `train` (rank 0): WriteRunReport with the defaults and one line saying where it
// is. A failure is printed as a warning ("train: no report: ...") and not thrown: the training
// itself succeeded and its files are intact.
void WriteRunReportAfterTraining(const std::string& run_dir);

}  // namespace angiotrain
