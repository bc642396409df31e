// Prediction from a checkpoint (see prediction.h).
#include "experiments/inference/prediction.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/fault_injection.h"
#include "datasets/ingest.h"
#include "datasets/volume_file.h"
#include "distributed/communicator_factory.h"
#include "distributed/process_context.h"
#include "experiments/training/checkpoint.h"
#include "experiments/training/epoch_evidence.h"
#include "experiments/evaluation/submission.h"
#include "experiments/training/task_model.h"
#include "experiments/evaluation/threshold_rule.h"
#include "experiments/training/validation.h"

namespace angiotrain {

int64_t Predict(const PredictOptions& options, MPI_Comm comm_handle) {
  auto rule = ThresholdRule::Parse(options.threshold);
  int64_t learnt_epoch = -1;
  const std::string thresholds_path =
      options.thresholds.empty() ? ThresholdsPathFor(options.checkpoint) : options.thresholds;
  if (rule.learns()) {
    if (!std::filesystem::exists(thresholds_path))
      throw CollectiveError("--threshold " + rule.ToString() + " uses thresholds learnt on validation, and " +
                            thresholds_path + " is missing (train writes them beside last.pt and best.pt; "
                            "name another file with --thresholds)");
    rule = WithLearntFromFile(rule, thresholds_path, &learnt_epoch);
  }
  const auto context = ProcessContext::Create(comm_handle, DeviceRequest::kCpu);
  auto comm = MakeCommunicator(context, {});
  if (context.world_size > 1) torch::set_num_threads(1);
  auto loaded = LoadCheckpoint(options.checkpoint);
  const Task task = ParseTask(loaded.config.model.task);
  if (learnt_epoch >= 0 && (loaded.epoch != learnt_epoch || loaded.step != 0))
    throw CollectiveError(thresholds_path + ": thresholds learnt after epoch " + std::to_string(learnt_epoch) + ", but " +
                          options.checkpoint + " holds the model at epoch " + std::to_string(loaded.epoch) + " step " +
                          std::to_string(loaded.step));

  std::string volume = options.input;
  std::string temporary;
  if (std::filesystem::is_directory(options.input)) {
    // A K-ium folder: ingest it at the model's resolution into a volume next to the output.
#ifndef ANGIOTRAIN_WITH_OPENCV
    throw Error(options.input + ": is a folder, but this build has no image decoding (OpenCV); "
                "give a volume file made by angiotrain ingest");
#else
    temporary = options.out + ".input.h5";
    IngestOptions ingest;
    ingest.input_dir = options.input;
    ingest.labels_csv = options.template_path;
    ingest.out_path = temporary;
    ingest.resolution = loaded.resolution;
    ingest.progress = false;
    IngestKiumFolder(ingest, context.comm);
    volume = temporary;
#endif
  }
  int64_t patients = 0;
  {
    VolumeReader reader(volume, context.comm);
    if (reader.resolution() != loaded.resolution)
      throw CollectiveError(volume + ": resolution " + std::to_string(reader.resolution()) + ", but the model in " +
                            options.checkpoint + " was trained at " + std::to_string(loaded.resolution));
    std::vector<int64_t> rows(reader.rows());
    for (int64_t i = 0; i < reader.rows(); ++i) rows[i] = i;
    MaybeInjectFault("predict-gather", context.rank);
    auto gathered = ForwardShards(loaded.model, reader, rows, *comm, options.batch_size, TaskOutputs(task),
                                  torch::kCPU, std::nullopt);
    if (context.is_root()) {
      const auto scored = TaskPredictions(gathered.logits, task);
      std::map<int32_t, PatientPrediction> predictions;
      for (size_t i = 0; i < gathered.rows.size(); ++i) predictions[reader.index()[gathered.rows[i]]] = scored[i];
      WriteSubmission(options.template_path, options.out, predictions, rule);
      patients = static_cast<int64_t>(predictions.size());
    }
  }
  comm->Barrier();
  if (!temporary.empty() && context.is_root()) std::filesystem::remove(temporary);
  return patients;
}

}  // namespace angiotrain
