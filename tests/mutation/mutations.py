"""The mutations of tests/mutation/run.sh: each breaks one promise of the README in the smallest
way, and names the tests that must notice. `old` must occur exactly once in `file`."""

EXPERIMENTS = "angiotrain_experiments_tests"
DATASETS = "angiotrain_datasets_tests"
DISTRIBUTED = "angiotrain_distributed_tests"

MUTATIONS = [
    {
        "name": "validation-rows-trained",
        "breaks": "train/validation separation (validation rows also train)",
        "file": "experiments/trainer.cpp",
        "old": "for (size_t i = 0; i < rows.size(); ++i) (i < n_val ? split.validation : split.train).push_back(rows[perm[i]]);",
        "new": "for (size_t i = 0; i < rows.size(); ++i) { if (i < n_val) split.validation.push_back(rows[perm[i]]); split.train.push_back(rows[perm[i]]); }",
        "target": EXPERIMENTS,
        "tests": "TrainCommand.ValidationRowsStayOutOfTrainingAndOutputsDescribeThem",
    },
    {
        "name": "checkpoint-written-in-place",
        "breaks": "last.pt written under its final name, not a temporary one",
        "file": "experiments/trainer.cpp",
        "old": "const std::string target = out.temp_path();",
        "new": "const std::string target = path;",
        "target": EXPERIMENTS,
        "tests": "TrainCommand.InterruptedCheckpointWriteKeepsThePreviousCheckpoint",
    },
    {
        "name": "predictions-to-wrong-patients",
        "breaks": "predict attaches row i's result to the i-th patient of the volume",
        "file": "experiments/trainer.cpp",
        "old": "predictions[reader.index()[gathered.rows[i]]] =",
        "new": "predictions[reader.index()[i]] =",
        "target": EXPERIMENTS,
        "tests": "PredictCommand.*",
    },
    {
        "name": "metrics-epoch-off-by-one",
        "breaks": "metrics.jsonl numbers epochs from 0",
        "file": "experiments/trainer.cpp",
        "old": 'record["epoch"] = epoch + 1;',
        "new": 'record["epoch"] = epoch;',
        "target": EXPERIMENTS,
        "tests": "TrainCommand.ValidationRowsStayOutOfTrainingAndOutputsDescribeThem",
    },
    {
        "name": "nan-guard-after-optimizer-step",
        "breaks": "a non-finite loss stops the run only after the weights changed",
        "file": "experiments/trainer.cpp",
        "old": "        if (!std::isfinite(mean_loss))\n",
        "new": "        if (!std::isfinite(mean_loss)) optimizer->step();\n        if (!std::isfinite(mean_loss))\n",
        "target": EXPERIMENTS,
        "tests": "TrainCommand.NonFiniteLossStopsEveryRankWithAClearMessage",
    },
    {
        "name": "resume-message-one-hash",
        "breaks": "the refused resume names only one of the two config hashes",
        "file": "experiments/trainer.cpp",
        "old": '": made with config hash " + header.config_hash + ", but this config ("',
        "new": '": made with another config hash, but this config ("',
        "target": EXPERIMENTS,
        "tests": "TrainCommand.ResumeWithADifferentConfigNamesBothHashes",
    },
    {
        "name": "submission-committed-early",
        "breaks": "output.csv renamed into place before the sidecar is written",
        "file": "experiments/submission.cpp",
        "old": "  WriteText(submission_out, submission);\n",
        "new": "  WriteText(submission_out, submission);\n  submission_out.Commit();\n",
        "target": EXPERIMENTS,
        "tests": "WriteSubmission.*",
    },
    {
        "name": "reducer-sums-gradients",
        "breaks": "gradients summed over ranks instead of averaged",
        "file": "distributed/gradient_reducer.cpp",
        "old": "bucket.work = comm_.AllReduceAsync(bucket.flat, ReduceOp::kAverage);",
        "new": "bucket.work = comm_.AllReduceAsync(bucket.flat, ReduceOp::kSum);",
        "target": DISTRIBUTED,
        "tests": "GradientReducer*:*ReducerEquivalence*",
    },
]
