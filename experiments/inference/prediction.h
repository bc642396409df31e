// Prediction from a checkpoint: the checkpoint's model over a volume file or a K-ium folder,
// each rank a shard, gathered on rank 0 and written as a K-ium submission with its sidecar of
// probabilities (experiments/evaluation/submission.h).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>

namespace angiotrain {

struct PredictOptions {
  std::string checkpoint;
  std::string input;          // a volume file, or a K-ium folder (ingested to a temporary volume)
  std::string template_path;  // test.csv: rows and column order of the submission
  std::string out;            // output.csv (the probabilities sidecar goes next to it)
  std::string threshold = "mean+1std";
  // For a rule that learns (f1, youden, gate over them): the run's thresholds file; "": the one
  // beside the checkpoint (experiments/training/epoch_evidence.h: last.pt -> last.thresholds.json).
  std::string thresholds;
  int64_t batch_size = 16;
};

// Collective over `comm`. Returns the patients scored (on rank 0).
int64_t Predict(const PredictOptions& options, MPI_Comm comm);

}  // namespace angiotrain
