// The training configuration: a small fixed TOML schema (sections data, model, train,
// evaluation, output), loaded from a file and overridden by `--set section.key=value`, plus its
// canonical text and hash (stored in checkpoints so that a resume with a different configuration
// is refused).
//
// The schema is data: Fields() lists every key with its type and default. A key the schema does
// not know, or a value of the wrong type, is an Error naming the file (or "--set") and the key.
// The same file holds sections that other rooms declare ([metrics], experiments/monitoring/
// metrics_config.h) or read themselves ([slurm], slurm/slurm_config.h): the command that reads the
// file passes them in as OtherSections, so that this file knows only the training sections.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/choice.h"

namespace angiotrain {

struct TrainConfig {
  struct Data {
    std::string volume;            // the volume file of `angiotrain ingest` (with labels)
    double validation_split = 0.3;  // fraction held out, stratified by Aneurysm (when folds < 2)
    int64_t split_seed = 0;        // seeds the split (same on every rank)
    // Stratified k-fold (experiments/training/data_split.h): folds >= 2 holds out fold `fold` (0..folds-1)
    // instead of validation_split; 0 or 1: the single split.
    int64_t folds = 0;
    int64_t fold = 0;
  } data;
  struct Model {
    std::string variant = "b0";
    double width_mult = 0;   // 0: the variant's
    double depth_mult = 0;   // 0: the variant's
    std::string task = "multitask";  // presence | location | multitask
    std::string init;        // "" (random) or an InitializeModel spec (models/weight_import.h)
    double dropout = -1;     // <0: the variant's
    double stochastic_depth = -1;  // <0: the variant's (0.2)
  } model;
  struct Train {
    int64_t epochs = 10;
    int64_t batch_size = 8;  // per rank
    double lr = 1e-4;
    std::string optimizer = "adam";  // OptimizerChoices(): adam | adamw | sgd (momentum 0.9)
    double weight_decay = 0;
    std::string schedule = "constant";  // constant | cosine (after warm-up)
    double warmup_epochs = 0;           // linear warm-up from 0, in epochs (fractional allowed)
    double grad_clip = 0;               // max global L2 norm; 0: off
    int64_t seed = 0;
    double bucket_mb = 25;
    // Averages the BatchNorm running statistics (used by evaluation only) over the ranks after
    // every step; training still normalises with each rank's batch. batchnorm = "sync" is what
    // shares the batch statistics themselves.
    bool sync_batchnorm = false;
    // "batch": in training BatchNorm normalises with the statistics of each rank's batch (the
    // usual, torch.nn.BatchNorm2d under DDP); "sync": with those of the global batch over every
    // rank (torch.nn.SyncBatchNorm: one all-reduce per layer in forward and one in backward);
    // "eval": with the running statistics, frozen. With "sync" or "eval", 2 ranks x b train as
    // 1 rank x 2b would.
    std::string batchnorm = "batch";
    double location_pos_weight = 1;  // multiplies the positive term of each location column
    int64_t threads = 0;          // intra-op threads per rank; 0: 1 when world > 1, else torch's
    std::string backend = "auto";  // auto | mpi | nccl
    std::string device = "auto";   // auto | cpu | cuda
    // Autocast dtype of the forward pass: auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16.
    // Weights, optimizer state and the loss stay fp32; channels_last is used on CUDA.
    std::string precision = "auto";
    bool resume = false;           // continue from output.dir/last.pt
  } train;
  struct Evaluation {
    // How validation turns location probabilities into 0/1 (ThresholdRule::Parse forms).
    std::string threshold = "mean+1std";
    // What picks the best epoch (best.pt) and ranks sweep trials: presence_auroc |
    // location_auroc | kium | rsna (experiments/evaluation/objective.h).
    std::string objective = "presence_auroc";
  } evaluation;
  struct Output {
    std::string dir = "out/run";
    int64_t checkpoint_every_steps = 0;  // 0: at epoch ends only
  } output;
};

// One key of the schema: "section.name", a pointer into a TrainConfig, whether it takes part in
// the config hash, and for a named choice the accepted names (from the choice's one table).
// What does not change a run's result is not hashed, and may change on a resume: threads,
// backend, device, resume, checkpoint frequency, the output folder, the evaluation rule, and
// the volume's path (a resume checks the volume's content instead; see experiments/training/checkpoint.h).
struct ConfigField {
  std::string key;
  std::variant<std::string*, int64_t*, double*, bool*> value;
  bool hashed = true;
  std::vector<std::string> choices = {};  // non-empty: the value must be one of these names
  // Hashed only when not the default: keys added after checkpoints existed (data.folds,
  // data.fold), so that a config that does not use them keeps its hash and its runs resume.
  bool hashed_unless_default = false;
};
std::vector<ConfigField> Fields(TrainConfig& config);

// The sections of a config file that are not the training room's, as the command reading the
// file assembles them: keys declared by another room (MetricsFields(metrics): "metrics.port", ...),
// read and overridden with the same typing rules as the training keys, never hashed; and tables
// with a parser of their own ("slurm"), skipped here. Any other table is an unknown key.
struct OtherSections {
  std::vector<ConfigField> fields;
  std::vector<std::string> skipped_tables;
  // A stored config (a checkpoint's header, a run folder's config.toml): only the training
  // sections are read, every other table is ignored (older versions stored [metrics] there).
  bool ignore_other_tables = false;
  static OtherSections StoredConfig();
};

// The fields as TOML sections, in their order ("[section]\nkey = value\n..."), reals with 17
// significant digits and strings escaped as TOML: loading the text back gives the same values.
std::string SectionsText(const std::vector<ConfigField>& fields);

// The keys that may differ on a resume (the unhashed ones), as "a, b and c".
std::string ResumableKeys();

// The named choices of the schema that the experiments layer owns; tasks, devices, backends
// and precisions have their tables in models/ and distributed/.
enum class OptimizerKind { kAdam, kAdamW, kSgd };
enum class ScheduleKind { kConstant, kCosine };
enum class BatchNormMode { kBatch, kSync, kEval };
const ChoiceTable<OptimizerKind>& OptimizerChoices();
const ChoiceTable<ScheduleKind>& ScheduleChoices();
const ChoiceTable<BatchNormMode>& BatchNormChoices();
// The choices of a validated config (ValidateTrainConfig has checked the names).
OptimizerKind OptimizerChoice(const TrainConfig& config);
ScheduleKind ScheduleChoice(const TrainConfig& config);
BatchNormMode BatchNormChoice(const TrainConfig& config);

// Reads `path` over the defaults. Throws Error "PATH: ..." on a syntax error, an unknown key or a
// wrongly typed value.
TrainConfig LoadTrainConfig(const std::string& path, const OtherSections& others = {});
// Parses TOML text (`origin` names it in messages) over the defaults.
TrainConfig ParseTrainConfig(const std::string& text, const std::string& origin, const OtherSections& others = {});

// Applies "section.key=value" (the value typed by the schema: true/false, integers, reals,
// strings with or without quotes). Throws Error naming the key.
void ApplyOverride(TrainConfig& config, const std::string& assignment, const OtherSections& others = {});
// Sets `key` from the TOML text of a value ("0.001", "true", "\"b1\"" with its escapes), typed
// as in a config file: a sweep's axis values. Throws Error naming the key.
void ApplyTomlValue(TrainConfig& config, const std::string& key, const std::string& toml_text);

// `text` as a TOML string that reads back byte for byte: toml++'s own form where it does (what
// canonical texts and config hashes were always made of), else a basic string with ", \ and
// the control characters escaped (toml++ may print a multi-line literal string, which loses a
// leading newline and cannot hold three single quotes). Config texts write strings so.
std::string TomlQuoted(const std::string& text);

// The file of model.init = "torchvision:PATH", or "" for any other init.
std::string TorchvisionInitFile(const TrainConfig& config);

// Checks ranges, finiteness and choices (every field with choices; model.variant against the
// EfficientNet variants; the evaluation threshold rule; data.fold against data.folds); throws
// Error naming the key: what the Trainer would refuse, found before anything is written. The other sections have
// their own checks (ValidateMetricsConfig, ValidateSlurmConfig). Commands call it once, before
// anything is written. That the volume has enough rows of each class for data.folds is checked
// where it is opened (the Trainer, and LoadSweepSpec for every trial).
void ValidateTrainConfig(const TrainConfig& config);

// Every key as TOML, in schema order, reals with 17 significant digits: loading it back gives
// the same config. CanonicalText(c, true) lists only the hashed keys.
std::string CanonicalText(const TrainConfig& config, bool hashed_only = false);
// 64-bit FNV-1a of CanonicalText(config, true), as 16 hex digits.
std::string ConfigHash(const TrainConfig& config);

}  // namespace angiotrain
