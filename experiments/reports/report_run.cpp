// The page of a training run (see report_run.h): read the run's files, compute the figures,
// lay them out with report_html.h.
#include "experiments/reports/report_run.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "experiments/training/checkpoint.h"
#include "experiments/training/epoch_evidence.h"
#include "experiments/evaluation/curves.h"
#include "experiments/reports/report_grad_cam.h"
#include "experiments/reports/report_html.h"
#include "experiments/evaluation/submission.h"
#include "experiments/evaluation/threshold_rule.h"
#include "experiments/training/train_config.h"
#include "models/heads.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const char* kSeedRule = "mean+1std";
const char* kBlue = "#1f77b4";
const char* kOrange = "#ff7f0e";
const char* kGreen = "#2ca02c";
const char* kRed = "#d62728";
const char* kPurple = "#9467bd";
const char* kGrey = "#7f7f7f";

double Nan() { return std::numeric_limits<double>::quiet_NaN(); }
double Or(const std::optional<double>& v) { return v ? *v : Nan(); }
// A JSON number, or null for a missing value (Chart.js leaves a gap).
Json Value(double v) { return std::isfinite(v) ? Json(v) : Json(); }

// Which epoch and checkpoint the page's figures (ROC, per location, confusion, Grad-CAM) come
// from. A run that keeps per-epoch evidence (experiments/training/epoch_evidence.h) has best.pt, the best epoch by its
// objective, beside last.pt: the page shows that epoch, the one `predict --checkpoint best.pt`
// uses, and says what the last epoch scored. Without best.pt it shows the last validation
// (validation_predictions.csv) and last.pt, and says so.
struct ShownEpoch {
  int64_t epoch = 0;        // 0: not known (no metrics.jsonl, no stored epochs)
  int64_t last_epoch = 0;   // the last validated epoch
  std::string checkpoint;   // run/best.pt or run/last.pt
  std::string predictions;  // the validation probabilities read
  bool best = false;        // chosen by best.json
  std::string objective, rule;
  std::optional<double> value;  // the objective's value at that epoch (best.json)
  std::string note;             // why the best epoch could not be shown, when it could not
};

// What the report reads from a run folder.
struct RunFiles {
  std::string dir, config_path, config_text;
  TrainConfig config;
  std::vector<Json> epochs;          // metrics.jsonl, one object per epoch
  ShownEpoch shown;
  std::vector<ProbabilityRow> predictions;  // of shown.predictions (empty when absent)
  std::vector<ProbabilityRow> last_predictions;  // validation_predictions.csv, when another epoch is shown
  std::string volume;
  // Truth of each prediction, in the same order.
  std::vector<uint8_t> aneurysm;
  std::vector<LocationFlags> locations;
  std::vector<uint8_t> last_aneurysm;  // of last_predictions
};

ShownEpoch ChooseEpoch(const std::string& dir, const std::vector<Json>& epochs) {
  ShownEpoch s;
  const std::vector<int64_t> stored = StoredEpochs(dir);
  if (!stored.empty()) s.last_epoch = stored.back();
  for (const Json& e : epochs)
    if (e.contains("val_loss")) s.last_epoch = std::max<int64_t>(s.last_epoch, e.value("epoch", 0));
  s.epoch = s.last_epoch;
  s.checkpoint = (fs::path(dir) / "last.pt").string();
  s.predictions = (fs::path(dir) / "validation_predictions.csv").string();
  const std::string best_json = (fs::path(dir) / "best.json").string(), best_pt = (fs::path(dir) / "best.pt").string();
  if (!fs::exists(best_json) || !fs::exists(best_pt)) return s;
  Json best;
  try {
    best = Json::parse(ReadFile(best_json));
  } catch (const Json::exception& e) {
    throw FileError(best_json, std::string("not JSON (") + e.what() + ")");
  }
  if (!best.contains("epoch") || !best["epoch"].is_number_integer() || best["epoch"].get<int64_t>() < 1)
    throw FileError(best_json, "expected {\"epoch\": N >= 1, \"objective\", \"rule\", \"value\"} (epoch_evidence.h)");
  const int64_t epoch = best["epoch"].get<int64_t>();
  const std::string predictions = EpochPredictionsPath(dir, epoch);
  if (!fs::exists(predictions)) {
    s.note = best_json + " names epoch " + std::to_string(epoch) + ", but " + predictions +
             " is missing: the figures are the last validation's";
    return s;
  }
  // best.pt is a copy of the checkpoint written at the end of that epoch: (epoch, step 0). A
  // best.json of another epoch (a run interrupted between the two writes) must not label it.
  const CheckpointHeader header = ReadCheckpointHeader(best_pt);
  if (header.epoch != epoch || header.step != 0) {
    s.note = best_pt + " holds epoch " + std::to_string(header.epoch) + " step " + std::to_string(header.step) +
             ", but " + best_json + " names epoch " + std::to_string(epoch) + ": the figures are the last validation's";
    return s;
  }
  s.epoch = epoch;
  s.last_epoch = std::max(s.last_epoch, epoch);
  s.checkpoint = best_pt;
  s.predictions = predictions;
  s.best = true;
  s.objective = best.value("objective", "");
  s.rule = best.value("rule", "");
  if (best.contains("value") && best["value"].is_number()) s.value = best["value"].get<double>();
  return s;
}

// "epoch 4, best.pt" / "last validation, epoch 6, last.pt": where a figure comes from.
std::string ShownLabel(const ShownEpoch& s) {
  const std::string checkpoint = fs::path(s.checkpoint).filename().string();
  if (s.best) return "epoch " + std::to_string(s.epoch) + ", " + checkpoint;
  return "last validation" + (s.epoch > 0 ? ", epoch " + std::to_string(s.epoch) : std::string()) + ", " + checkpoint;
}

// The labels of `predictions` in `reader`, in their order.
void LabelsOf(const VolumeReader& reader, const std::string& volume, const std::string& predictions_path,
              const std::vector<ProbabilityRow>& predictions, std::vector<uint8_t>* aneurysm,
              std::vector<LocationFlags>* locations) {
  std::map<int32_t, int64_t> row_of;
  for (size_t i = 0; i < reader.index().size(); ++i) row_of[reader.index()[i]] = static_cast<int64_t>(i);
  for (const ProbabilityRow& p : predictions) {
    const auto it = row_of.find(p.index);
    if (it == row_of.end())
      throw FileError(volume, "no patient with Index " + std::to_string(p.index) + " of " + predictions_path +
                                  " (is it the volume this run trained on?)");
    aneurysm->push_back(reader.aneurysm()[it->second]);
    if (!locations) continue;
    LocationFlags flags{};
    for (int k = 0; k < kNumLocations; ++k) flags[k] = reader.locations()[it->second * kNumLocations + k];
    locations->push_back(flags);
  }
}

RunFiles ReadRun(const RunReportOptions& o) {
  RunFiles r;
  r.dir = o.run_dir;
  if (!fs::is_directory(r.dir)) throw FileError(r.dir, "not a folder (expected a training run's output.dir)");
  r.config_path = (fs::path(r.dir) / "config.toml").string();
  if (!fs::exists(r.config_path))
    throw FileError(r.dir, "no config.toml: not the output.dir of angiotrain train");
  r.config_text = ReadFile(r.config_path);
  r.config = ParseTrainConfig(r.config_text, r.config_path, OtherSections::StoredConfig());
  const std::string metrics = (fs::path(r.dir) / "metrics.jsonl").string();
  if (fs::exists(metrics)) {
    std::istringstream in(ReadFile(metrics));
    int line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      if (line.empty()) continue;
      try {
        r.epochs.push_back(Json::parse(line));
      } catch (const Json::exception& e) {
        throw FileError(metrics, "line " + std::to_string(line_number) + ": not JSON (" + e.what() + ")");
      }
    }
  }
  r.shown = ChooseEpoch(r.dir, r.epochs);
  const std::string& predictions = r.shown.predictions;
  if (!fs::exists(predictions)) return r;
  r.predictions = ReadProbabilities(predictions);
  const std::string last = (fs::path(r.dir) / "validation_predictions.csv").string();
  if (r.shown.best && r.shown.epoch != r.shown.last_epoch && fs::exists(last)) r.last_predictions = ReadProbabilities(last);
  r.volume = o.volume.empty() ? r.config.data.volume : o.volume;
  if (!fs::is_regular_file(r.volume))
    throw FileError(r.volume, std::string("the volume with the validation labels is missing (") +
                                  (o.volume.empty() ? "data.volume of " + r.config_path + "; give --volume" : "--volume") +
                                  ")");
  VolumeReader reader(r.volume, MPI_COMM_NULL);
  if (!reader.has_labels()) throw FileError(r.volume, "has no labels; the report needs the training volume's");
  LabelsOf(reader, r.volume, predictions, r.predictions, &r.aneurysm, &r.locations);
  LabelsOf(reader, r.volume, last, r.last_predictions, &r.last_aneurysm, nullptr);
  return r;
}

// ---- chart configurations (Chart.js 3) ----------------------------------------------------

Json Axis(const std::string& title, std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt) {
  Json a = {{"title", {{"display", true}, {"text", title}}}};
  if (min) a["min"] = *min;
  if (max) a["max"] = *max;
  return a;
}

Json Line(const std::string& label, Json points, const std::string& colour) {
  return {{"label", label}, {"data", std::move(points)}, {"showLine", true}, {"pointRadius", 0},
          {"borderColor", colour}, {"backgroundColor", colour}, {"borderWidth", 2}, {"fill", false}};
}

Json Points(const std::vector<std::pair<double, double>>& xy) {
  Json out = Json::array();
  for (const auto& [x, y] : xy) out.push_back({{"x", x}, {"y", y}});
  return out;
}

ReportChart RocChart(const std::vector<CurvePoint>& points, const std::optional<RocBootstrap>& band, double auroc) {
  Json datasets = Json::array();
  if (band) {
    std::vector<std::pair<double, double>> lo, hi;
    for (size_t g = 0; g < band->fpr.size(); ++g) {
      lo.emplace_back(band->fpr[g], band->tpr_low[g]);
      hi.emplace_back(band->fpr[g], band->tpr_high[g]);
    }
    Json low = Line("95% band, lower", Points(lo), "rgba(31,119,180,0.25)");
    low["borderWidth"] = 0;
    Json high = Line("95% band, upper", Points(hi), "rgba(31,119,180,0.25)");
    high["borderWidth"] = 0;
    high["fill"] = "-1";
    datasets.push_back(low);
    datasets.push_back(high);
  }
  std::vector<std::pair<double, double>> roc;
  for (const auto& p : points) roc.emplace_back(p.fpr, p.tpr);
  datasets.push_back(Line("ROC, AUROC " + FormatNumber(auroc), Points(roc), kBlue));
  Json chance = Line("chance", Points({{0, 0}, {1, 1}}), kGrey);
  chance["borderDash"] = {4, 4};
  chance["borderWidth"] = 1;
  datasets.push_back(chance);
  return {"chart-roc",
          {{"type", "scatter"},
           {"data", {{"datasets", datasets}}},
           {"options", {{"scales", {{"x", Axis("false positive rate", 0.0, 1.0)}, {"y", Axis("true positive rate", 0.0, 1.0)}}}}}}};
}

ReportChart PrChart(const std::vector<CurvePoint>& points, double ap, double prevalence) {
  std::vector<std::pair<double, double>> pr;
  for (size_t k = 1; k < points.size(); ++k) pr.emplace_back(points[k].tpr, points[k].precision);
  Json base = Line("no skill (prevalence " + FormatNumber(prevalence) + ")", Points({{0, prevalence}, {1, prevalence}}), kGrey);
  base["borderDash"] = {4, 4};
  base["borderWidth"] = 1;
  Json curve = Line("precision-recall, AP " + FormatNumber(ap), Points(pr), kOrange);
  curve["stepped"] = "before";
  return {"chart-pr",
          {{"type", "scatter"},
           {"data", {{"datasets", Json::array({curve, base})}}},
           {"options", {{"scales", {{"x", Axis("recall", 0.0, 1.0)}, {"y", Axis("precision", 0.0, 1.0)}}}}}}};
}

// One line per metrics.jsonl field, over the epochs (a gap where an epoch lacks it).
Json EpochSeries(const std::vector<Json>& epochs, const std::string& field, const std::string& label,
                 const std::string& colour) {
  std::vector<std::pair<double, double>> xy;
  Json data = Json::array();
  for (const Json& e : epochs) {
    const Json& v = e.contains(field) ? e[field] : Json();
    data.push_back({{"x", e.value("epoch", 0)}, {"y", v.is_number() ? v : Json()}});
  }
  Json line = Line(label, data, colour);
  line["pointRadius"] = 3;
  line["spanGaps"] = false;
  return line;
}

bool AnyEpochHas(const std::vector<Json>& epochs, const std::string& field) {
  return std::any_of(epochs.begin(), epochs.end(), [&](const Json& e) { return e.contains(field) && e[field].is_number(); });
}

// ---- sections ----------------------------------------------------------------------------

std::string Row(const std::vector<std::string>& cells, const char* tag = "td") {
  std::string out = "<tr>";
  for (const auto& c : cells) out += std::string("<") + tag + ">" + c + "</" + tag + ">";
  return out + "</tr>\n";
}

std::string Optional3(const std::optional<double>& v) { return v ? FormatNumber(*v) : "&mdash;"; }

std::string CountsTable(const std::vector<std::pair<std::string, BinaryCounts>>& rows) {
  std::string html = "<table>" + Row({"", "TP", "FP", "FN", "TN", "precision", "recall", "F1", "accuracy"}, "th");
  for (const auto& [name, c] : rows)
    html += Row({HtmlEscape(name), std::to_string(c.tp), std::to_string(c.fp), std::to_string(c.fn), std::to_string(c.tn),
                 Optional3(Precision(c)), Optional3(Recall(c)), Optional3(F1(c)), Optional3(Accuracy(c))});
  return html + "</table>";
}

BinaryCounts Sum(const LocationReport& report) {
  BinaryCounts total;
  for (const auto& s : report.per_location) {
    total.tp += s.counts.tp;
    total.fp += s.counts.fp;
    total.fn += s.counts.fn;
    total.tn += s.counts.tn;
  }
  return total;
}

struct Example {
  std::string kind;  // "true positive", ...
  int32_t index;
  double probability;
};

// Up to `n` validation patients of each kind, the most confident first.
std::vector<Example> PickExamples(const RunFiles& r, int n) {
  std::vector<Example> tp, fp, fn;
  for (size_t i = 0; i < r.predictions.size(); ++i) {
    const double p = r.predictions[i].prediction.aneurysm;
    const Example e{"", r.predictions[i].index, p};
    if (r.aneurysm[i] && p >= 0.5) tp.push_back(e);
    if (!r.aneurysm[i] && p >= 0.5) fp.push_back(e);
    if (r.aneurysm[i] && p < 0.5) fn.push_back(e);
  }
  auto desc = [](const Example& a, const Example& b) { return a.probability > b.probability; };
  std::sort(tp.begin(), tp.end(), desc);
  std::sort(fp.begin(), fp.end(), desc);
  std::sort(fn.begin(), fn.end(), [](const Example& a, const Example& b) { return a.probability < b.probability; });
  std::vector<Example> out;
  for (auto [kind, list] : {std::pair{"true positive", &tp}, {"false positive", &fp}, {"false negative", &fn}})
    for (int k = 0; k < n && k < static_cast<int>(list->size()); ++k) out.push_back({kind, (*list)[k].index, (*list)[k].probability});
  return out;
}

std::string GradCamSection(const RunFiles& r, int examples, int layer, int* figures) {
  const std::string& checkpoint = r.shown.checkpoint;
  const std::string name = fs::path(checkpoint).filename().string();
  if (!fs::exists(checkpoint)) return "<p class=\"note\">No " + name + " in the run folder: no Grad-CAM figures.</p>";
  std::vector<Example> chosen = PickExamples(r, examples);
  if (chosen.empty()) return "<p class=\"note\">No validation patient to show.</p>";
  LoadedCheckpoint model = LoadCheckpoint(checkpoint);
  const Task task = ParseTask(model.config.model.task);
  VolumeReader reader(r.volume, MPI_COMM_NULL);
  std::string html;
  int map_side = 0;
  for (const Example& e : chosen) {
    std::string target = "presence";
    if (!HasPresence(task)) {
      const auto& row = *std::find_if(r.predictions.begin(), r.predictions.end(),
                                      [&](const ProbabilityRow& p) { return p.index == e.index; });
      const auto& l = row.prediction.locations;
      target = LocationNames()[std::max_element(l.begin(), l.end()) - l.begin()];
    }
    const PatientGradCam cam = ExplainPatient(model, checkpoint, reader, e.index, target, layer);
    map_side = cam.map_side;
    html += "<figure><img alt=\"Grad-CAM of patient " + std::to_string(e.index) + "\" src=\"data:image/png;base64," +
            Base64(GradCamGridPng(cam, 192)) + "\"><figcaption>" + e.kind + ": Index " + std::to_string(e.index) +
            ", " + HtmlEscape(target) + " p = " + FormatNumber(cam.probability) + "</figcaption></figure>\n";
    ++*figures;
  }
  const std::string stage = "features." + std::to_string(layer);
  const std::string why =
      layer == kReportGradCamLayer
          ? "the stage whose maps point at the aneurysms in the project's phantom measurement (README &ldquo;How well "
            "the maps point at aneurysms&rdquo;); <code>report --layer features.N</code> takes another"
          : "chosen with <code>report --layer</code>; the default, features." + std::to_string(kReportGradCamLayer) +
                ", is the stage whose maps point at the aneurysms in the project's phantom measurement";
  return "<p class=\"note\">Grad-CAM of " + HtmlEscape(ShownLabel(r.shown)) +
         " (the model of the figures above): the presence output, Grad-CAM over " + stage + " (" +
         std::to_string(map_side) + "x" + std::to_string(map_side) + " map at " + std::to_string(model.resolution) +
         " px: " + why + "), up-sampled and overlaid on the 8 views; presence called at p &ge; 0.5. A location-only "
         "model is explained through its most probable location. Same figure as <code>angiotrain explain "
         "--checkpoint " + HtmlEscape(name) + " --layer " + stage + "</code>.</p>\n" + html;
}

}  // namespace

std::string RunReportPath(const std::string& run_dir) { return (fs::path(run_dir) / "report.html").string(); }

RunReportSummary WriteRunReport(const RunReportOptions& o) {
  const int layer = ReportGradCamLayer(o.layer);  // a bad --layer fails before anything is read
  const RunFiles r = ReadRun(o);
  RunReportSummary summary;
  summary.path = o.out.empty() ? RunReportPath(o.run_dir) : o.out;
  const TrainConfig& c = r.config;
  ReportPage page("Training run report: " + fs::path(fs::absolute(r.dir)).lexically_normal().filename().string());

  // Summary.
  std::string overview = "<table>";
  overview += Row({"run folder", HtmlEscape(r.dir)});
  overview += Row({"model", HtmlEscape("EfficientNet-" + c.model.variant + " (width " + FormatNumber(c.model.width_mult, 2) +
                                       ", depth " + FormatNumber(c.model.depth_mult, 2) + "; 0: the variant's), task " +
                                       c.model.task)});
  overview += Row({"epochs in metrics.jsonl", std::to_string(r.epochs.size()) + " of " + std::to_string(c.train.epochs)});
  double seconds = 0;
  for (const Json& e : r.epochs) seconds += e.value("train_seconds", 0.0);
  overview += Row({"training time (steps)", FormatNumber(seconds, 1) + " s"});
  overview += Row({"validation patients", std::to_string(r.predictions.size())});
  const ShownEpoch& shown = r.shown;
  summary.epoch = shown.epoch;
  summary.checkpoint = shown.checkpoint;
  std::string source;
  if (shown.best) {
    source = "epoch " + std::to_string(shown.epoch) + " of " + std::to_string(shown.last_epoch) +
             ", <code>best.pt</code>: the best epoch by " + HtmlEscape(shown.objective) +
             (shown.value ? " (" + FormatNumber(*shown.value) + ")" : std::string(" (undefined at every epoch)")) +
             (shown.rule.empty() ? std::string() : ", threshold rule " + HtmlEscape(shown.rule));
    if (shown.epoch == shown.last_epoch) source += "; it is also the last epoch";
  } else {
    source = "the last validation" + (shown.epoch > 0 ? " (epoch " + std::to_string(shown.epoch) + ")" : std::string()) +
             " and <code>last.pt</code>; " +
             (shown.note.empty() ? std::string("no best.pt in the run folder") : HtmlEscape(shown.note));
  }
  overview += Row({"figures from", source});

  const bool scored = !r.predictions.empty();
  std::vector<double> presence;
  for (const auto& p : r.predictions) presence.push_back(p.prediction.aneurysm);
  std::vector<CurvePoint> points;
  std::optional<RocBootstrap> band;
  if (scored) {
    summary.patients = static_cast<long>(r.predictions.size());
    summary.auroc = Auroc(presence, r.aneurysm);
    points = OperatingPoints(presence, r.aneurysm);
    band = BootstrapRoc(presence, r.aneurysm, o.bootstrap);
    const long positives = static_cast<long>(std::count(r.aneurysm.begin(), r.aneurysm.end(), 1));
    std::string auroc = Optional3(summary.auroc);
    if (band)
      auroc += " (95% interval " + FormatNumber(band->auroc_low) + "&ndash;" + FormatNumber(band->auroc_high) + ", " +
               std::to_string(band->resamples) + " bootstrap resamples of the patients)";
    overview += Row({"with an aneurysm", std::to_string(positives)});
    overview += Row({"Aneurysm AUROC", auroc});
    overview += Row({"average precision", Optional3(AveragePrecision(points))});
    if (!r.last_predictions.empty()) {
      std::vector<double> last;
      for (const auto& p : r.last_predictions) last.push_back(p.prediction.aneurysm);
      overview += Row({"last epoch (" + std::to_string(shown.last_epoch) + ", last.pt) Aneurysm AUROC",
                       Optional3(Auroc(last, r.last_aneurysm))});
    }
  }
  overview += "</table>";
  if (!scored)
    overview += "<p class=\"note\">No validation_predictions.csv in the run folder (no validation split, or no epoch "
                "finished): no ROC, per-location or Grad-CAM figures.</p>";
  page.AddSection("summary", "Summary", overview);

  if (scored && !points.empty()) {
    const double prevalence = static_cast<double>(std::count(r.aneurysm.begin(), r.aneurysm.end(), 1)) /
                              static_cast<double>(r.aneurysm.size());
    page.AddChart(RocChart(points, band, Or(summary.auroc)));
    page.AddChart(PrChart(points, Or(AveragePrecision(points)), prevalence));
    page.AddSection("roc", "Aneurysm presence: ROC and precision-recall (" + ShownLabel(shown) + ")",
                    "<div class=\"grid\">" + ReportPage::Canvas("chart-roc", 380) +
                        ReportPage::Canvas("chart-pr", 380) + "</div>");
  } else if (scored) {
    page.AddSection("roc", "Aneurysm presence: ROC and precision-recall",
                    "<p class=\"note\">The validation set holds one class only: the ROC curve is undefined.</p>");
  }

  if (!r.epochs.empty()) {
    Json loss = Json::array({EpochSeries(r.epochs, "train_loss", "training loss", kBlue)});
    if (AnyEpochHas(r.epochs, "val_loss")) loss.push_back(EpochSeries(r.epochs, "val_loss", "validation loss", kOrange));
    page.AddChart({"chart-loss",
                   {{"type", "scatter"},
                    {"data", {{"datasets", loss}}},
                    {"options", {{"scales", {{"x", Axis("epoch")}, {"y", Axis("loss")}}}}}}});
    Json figures = Json::array();
    const std::vector<std::tuple<const char*, const char*, const char*>> series = {
        {"aneurysm_auroc", "Aneurysm AUROC", kBlue},
        {"aneurysm_accuracy", "Aneurysm accuracy (0.5)", kPurple},
        {"location_accuracy", "location accuracy", kGreen},
        {"no_location_accuracy", "no-location baseline", kGrey},
        {"location_macro_auroc", "mean per-location AUROC", kRed}};
    for (const auto& [field, label, colour] : series)
      if (AnyEpochHas(r.epochs, field)) figures.push_back(EpochSeries(r.epochs, field, label, colour));
    std::string html = "<div class=\"grid\">" + ReportPage::Canvas("chart-loss");
    if (!figures.empty()) {
      page.AddChart({"chart-validation",
                     {{"type", "scatter"},
                      {"data", {{"datasets", figures}}},
                      {"options", {{"scales", {{"x", Axis("epoch")}, {"y", Axis("validation figure")}}}}}}});
      html += ReportPage::Canvas("chart-validation");
    }
    html += "</div>";
    page.AddSection("training", "Training and validation per epoch (metrics.jsonl)", html);
  }

  const Task task = ParseTask(c.model.task);
  if (scored && HasLocations(task)) {
    std::vector<LocationProbabilities> probabilities;
    for (const auto& p : r.predictions) probabilities.push_back(p.prediction.locations);
    const ThresholdRule chosen = ThresholdRule::Parse(c.evaluation.threshold);
    const ThresholdRule seed = ThresholdRule::Parse(kSeedRule);
    // A rule that learns (f1, youden, a gate over them) is scored on these validation rows with
    // cuts learnt out of sample, each half with the other half's, as a sweep scores it.
    ThresholdInputs inputs;
    for (const auto& p : r.predictions) inputs.presence.push_back(p.prediction.aneurysm);
    inputs.locations = probabilities;
    const ThresholdLabels labels{r.aneurysm, r.locations};
    const LocationReport report =
        ScoreLocations(CrossFittedFlags(chosen, inputs, labels), r.locations, probabilities);
    const std::string rule_label =
        chosen.ToString() + (chosen.learns() ? ", its cuts cross-fitted on two halves of the validation rows" : "");
    const LocationReport seed_report = ScoreLocations(seed.Apply(probabilities), r.locations, probabilities);
    const double n = static_cast<double>(report.patients);
    Json names = Json::array(), auroc = Json::array(), accuracy = Json::array(), baseline = Json::array(),
         precision = Json::array(), recall = Json::array(), f1 = Json::array();
    std::string table = "<table>" + Row({"location", "support", "AUROC", "accuracy", "no-location baseline",
                                         "precision", "recall", "F1", "TP", "FP", "FN"}, "th");
    for (int k = 0; k < kNumLocations; ++k) {
      const LocationScore& s = report.per_location[k];
      const double acc = Or(Accuracy(s.counts)), base = (n - static_cast<double>(s.counts.support())) / n;
      names.push_back(LocationNames()[k]);
      auroc.push_back(Value(Or(s.auroc)));
      accuracy.push_back(Value(acc));
      baseline.push_back(Value(base));
      precision.push_back(Value(Or(s.precision)));
      recall.push_back(Value(Or(s.recall)));
      f1.push_back(Value(Or(s.f1)));
      table += Row({LocationNames()[k], std::to_string(s.counts.support()), Optional3(s.auroc), FormatNumber(acc, 4),
                    FormatNumber(base, 4), Optional3(s.precision), Optional3(s.recall), Optional3(s.f1),
                    std::to_string(s.counts.tp), std::to_string(s.counts.fp), std::to_string(s.counts.fn)});
    }
    table += Row({"<b>all</b>", std::to_string(Sum(report).support()), Optional3(report.macro_auroc) + " (mean)",
                  FormatNumber(report.kium_accuracy, 4), FormatNumber(report.no_location_accuracy, 4),
                  Optional3(report.macro_precision) + " (macro)", Optional3(report.macro_recall) + " (macro)",
                  Optional3(report.macro_f1) + " (macro)", std::to_string(Sum(report).tp), std::to_string(Sum(report).fp),
                  std::to_string(Sum(report).fn)});
    table += "</table>";
    auto bars = [](const std::string& label, Json data, const std::string& colour) {
      return Json{{"label", label}, {"data", std::move(data)}, {"backgroundColor", colour}};
    };
    page.AddChart({"chart-locations",
                   {{"type", "bar"},
                    {"data", {{"labels", names},
                              {"datasets", Json::array({bars("AUROC", auroc, kBlue), bars("precision", precision, kOrange),
                                                        bars("recall", recall, kGreen), bars("F1", f1, kRed)})}}},
                    {"options", {{"scales", {{"y", Axis("score", 0.0, 1.0)}}}}}}});
    page.AddChart({"chart-location-accuracy",
                   {{"type", "bar"},
                    {"data", {{"labels", names},
                              {"datasets", Json::array({bars("accuracy (" + rule_label + ")", accuracy, kGreen),
                                                        bars("no-location baseline", baseline, kGrey)})}}},
                    {"options", {{"scales", {{"y", Axis("accuracy")}}}}}}});
    page.AddSection("locations", "Per location (threshold rule " + HtmlEscape(rule_label) + "; " + ShownLabel(shown) + ")",
                    ReportPage::Canvas("chart-locations", 340) + ReportPage::Canvas("chart-location-accuracy", 300) +
                        "<p class=\"note\">Accuracy of a location counts every patient; the no-location baseline is "
                        "the accuracy of predicting no aneurysm there (1 &minus; prevalence). AUROC is undefined "
                        "(&mdash;) where the validation set has no patient with that location.</p>" + table);

    std::string confusion = "<h3>Aneurysm presence, p &ge; 0.5</h3>" +
                            CountsTable({{"presence", CountBinary([&] {
                                            std::vector<uint8_t> called;
                                            for (double p : presence) called.push_back(p >= 0.5);
                                            return called;
                                          }(), r.aneurysm)}});
    confusion += "<h3>Locations, all 21 cells of every patient</h3>";
    const std::string same = chosen.ToString() == seed.ToString() ? " (the run's rule is the seed's)" : "";
    confusion += CountsTable({{"run's rule " + chosen.ToString(), Sum(report)},
                              {"seed's rule " + seed.ToString() + same, Sum(seed_report)}});
    confusion += "<table>" + Row({"", "location accuracy", "no-location baseline", "exact match", "baseline exact match"}, "th");
    for (const auto& [name, rep] : {std::pair{"run's rule " + chosen.ToString(), &report},
                                    std::pair{"seed's rule " + seed.ToString(), &seed_report}})
      confusion += Row({HtmlEscape(name), FormatNumber(rep->kium_accuracy, 4), FormatNumber(rep->no_location_accuracy, 4),
                        FormatNumber(rep->exact_match), FormatNumber(rep->no_location_exact_match)});
    confusion += "</table>";
    page.AddSection("confusion", "Confusion counts (" + ShownLabel(shown) + ")", confusion);
  }

  if (scored && o.examples > 0)
    page.AddSection("gradcam", "Where the model looked (Grad-CAM, validation patients)",
                    GradCamSection(r, o.examples, layer, &summary.figures));

  page.AddSection("config", "Configuration (config.toml)", "<pre>" + HtmlEscape(r.config_text) + "</pre>");
  WriteFileAtomically(summary.path, page.Render());
  return summary;
}

void WriteRunReportAfterTraining(const std::string& run_dir) {
  try {
    RunReportOptions options;
    options.run_dir = run_dir;
    const RunReportSummary s = WriteRunReport(options);
    std::printf("train: report %s\n", s.path.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train: no report: %s\n", e.what());
  }
  std::fflush(stdout);
}

}  // namespace angiotrain
