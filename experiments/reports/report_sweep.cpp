// The page of a sweep (see report_sweep.h).
#include "experiments/reports/report_sweep.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "experiments/reports/report_html.h"
#include "experiments/reports/report_run.h"
#include "experiments/sweeps/sweep_store.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string Cell(const std::optional<double>& v, int digits = 4) { return v ? FormatNumber(*v, digits) : "&mdash;"; }

bool Numeric(const std::string& text, double* value) {
  try {
    size_t used = 0;
    *value = std::stod(text, &used);
    return used == text.size() && std::isfinite(*value);
  } catch (const std::exception&) {
    return false;
  }
}

// The value of axis `axis` in a row: a setting, the epoch count or the threshold rule.
std::string AxisValue(const ResultRow& row, const std::string& axis) {
  if (axis == "epochs") return std::to_string(row.epochs);
  if (axis == "threshold") return row.threshold;
  for (const auto& [key, value] : row.settings)
    if (key == axis) return value;
  return "";
}

// The objective against one axis: a scatter over the values (numbers on a linear or, when they
// span more than 10x, a logarithmic axis; names as categories), one series per epoch count.
ReportChart AxisChart(const std::vector<ResultRow>& rows, const std::string& axis, const std::string& objective,
                      int number) {
  std::vector<std::string> categories;
  bool numeric = true;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : rows) {
    if (!row.objective) continue;
    const std::string v = AxisValue(row, axis);
    double x;
    if (Numeric(v, &x)) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    } else {
      numeric = false;
    }
    if (std::find(categories.begin(), categories.end(), v) == categories.end()) categories.push_back(v);
  }
  std::map<int64_t, Json> series;  // epochs -> points
  for (const auto& row : rows) {
    if (!row.objective) continue;
    const std::string v = AxisValue(row, axis);
    double x = 0;
    if (numeric) Numeric(v, &x);
    else x = static_cast<double>(std::find(categories.begin(), categories.end(), v) - categories.begin());
    series[row.epochs].push_back({{"x", x}, {"y", *row.objective}, {"trial", row.trial}});
  }
  Json datasets = Json::array();
  size_t k = 0;
  for (auto& [epochs, points] : series) {
    const char* colour = kPalette[k++ % 8];
    datasets.push_back({{"label", std::to_string(epochs) + " epochs"}, {"data", points}, {"pointRadius", 5},
                        {"borderColor", colour}, {"backgroundColor", colour}});
  }
  Json x_axis = {{"title", {{"display", true}, {"text", axis}}}};
  if (numeric && lo > 0 && hi / lo > 10) x_axis["type"] = "logarithmic";
  if (!numeric) {
    // Category names as tick labels: Chart.js reads them from the axis' `labels` through the
    // category scale, so draw the points on one instead.
    x_axis = {{"type", "category"}, {"labels", categories}, {"title", {{"display", true}, {"text", axis}}}};
    for (auto& d : datasets)
      for (auto& p : d["data"]) p["x"] = categories[static_cast<size_t>(p["x"].get<double>())];
  }
  return {"chart-axis-" + std::to_string(number),
          {{"type", "scatter"},
           {"data", {{"datasets", datasets}}},
           {"options", {{"scales", {{"x", x_axis}, {"y", {{"title", {{"display", true}, {"text", objective}}}}}}}}}}};
}

}  // namespace

SweepReportSummary WriteSweepReport(const std::string& store_dir, const std::string& out, int examples,
                                    const std::string& layer) {
  if (!fs::exists(fs::path(store_dir) / "plan.json"))
    throw FileError(store_dir, "no plan.json: not a sweep's trial store (sweep.dir)");
  const StoredPlan plan = ReadStoredPlan(store_dir);
  const std::string objective = ChoiceName(ObjectiveChoices(), plan.objective);
  SweepReportSummary summary;
  summary.path = out.empty() ? (fs::path(store_dir) / "report.html").string() : out;
  const fs::path page_dir = fs::absolute(summary.path).parent_path();

  // Each training run's own page, linked from the table: the trial's, or each fold's of a
  // cross-validated trial.
  const bool cv = plan.cross_validation >= 2;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> links;  // trial -> (label, relative link)
  std::map<std::string, std::string> failures;                                    // trial -> reason
  for (const StoredTrial& trial : plan.trials) {
    const auto runs = RunDirs(TrialDir(store_dir, trial.name), plan.cross_validation);
    for (size_t k = 0; k < runs.size(); ++k) {
      if (!fs::exists(fs::path(runs[k]) / "config.toml")) continue;
      const std::string label = cv ? "fold_" + std::to_string(k) : trial.name;
      try {
        RunReportOptions options;
        options.run_dir = runs[k];
        options.examples = examples;
        options.layer = layer;
        const RunReportSummary s = WriteRunReport(options);
        links[trial.name].emplace_back(label, fs::relative(fs::absolute(s.path), page_dir).generic_string());
        ++summary.trial_pages;
      } catch (const std::exception& e) {
        failures[trial.name] += (failures[trial.name].empty() ? "" : "; ") + (cv ? label + ": " : "") + e.what();
      }
    }
  }

  const std::vector<ResultRow> rows = CollectResults(store_dir);
  summary.evaluations = static_cast<int>(rows.size());
  std::vector<std::string> axes;
  for (const auto& row : rows)
    for (const auto& [key, value] : row.settings)
      if (key != "train.epochs" && std::find(axes.begin(), axes.end(), key) == axes.end()) axes.push_back(key);
  axes.push_back("epochs");
  if (plan.thresholds.size() > 1) axes.push_back("threshold");

  ReportPage page("Sweep report: " + fs::path(fs::absolute(store_dir)).lexically_normal().filename().string());
  std::string overview = "<table>";
  overview += "<tr><td>trial store</td><td>" + HtmlEscape(store_dir) + "</td></tr>";
  overview += "<tr><td>objective</td><td>" + HtmlEscape(objective) + " (higher is better)</td></tr>";
  overview += "<tr><td>trials</td><td>" + std::to_string(plan.trials.size()) + "</td></tr>";
  if (cv)
    overview += "<tr><td>cross-validation</td><td>" + std::to_string(plan.cross_validation) +
                " stratified folds per trial; the objective is the mean over the folds (&plusmn; their sd)</td></tr>";
  overview += "<tr><td>evaluations (trial &times; epochs &times; threshold rule)</td><td>" + std::to_string(rows.size()) +
              "</td></tr></table>";
  page.AddSection("summary", "Summary", overview);

  std::string charts = "<div class=\"grid\">";
  for (size_t k = 0; k < axes.size(); ++k) {
    page.AddChart(AxisChart(rows, axes[k], objective, static_cast<int>(k)));
    charts += ReportPage::Canvas("chart-axis-" + std::to_string(k), 320);
  }
  charts += "</div>";
  page.AddSection("axes", "The objective against each axis", charts);

  std::set<std::string> setting_keys;
  for (const auto& row : rows)
    for (const auto& [key, value] : row.settings) setting_keys.insert(key);
  std::string table = "<table><tr><th>rank</th><th>trial</th>";
  for (const auto& key : setting_keys) table += "<th>" + HtmlEscape(key) + "</th>";
  table += "<th>epochs</th><th>threshold</th><th>state</th><th>" + HtmlEscape(objective) +
           "</th><th>presence AUROC</th><th>location AUROC</th><th>K-ium location accuracy</th><th>no-location "
           "baseline</th></tr>\n";
  int rank = 0;
  for (const auto& row : rows) {
    std::string trial = HtmlEscape(row.trial);
    if (const auto link = links.find(row.trial); link != links.end()) {
      auto anchor = [](const std::pair<std::string, std::string>& l) {
        return "<a href=\"" + HtmlEscape(l.second) + "\">" + HtmlEscape(l.first) + "</a>";
      };
      if (!cv) trial = anchor(link->second.front());
      for (size_t k = 0; cv && k < link->second.size(); ++k) trial += (k ? " " : "<br>") + anchor(link->second[k]);
    }
    table += "<tr><td>" + (row.objective ? std::to_string(++rank) : std::string("&mdash;")) + "</td><td>" + trial + "</td>";
    for (const auto& key : setting_keys) table += "<td>" + HtmlEscape(AxisValue(row, key)) + "</td>";
    std::string state = HtmlEscape(row.state);
    if (!row.reason.empty()) state += ": " + HtmlEscape(row.reason);
    if (failures.count(row.trial)) state += " (no page: " + HtmlEscape(failures[row.trial]) + ")";
    table += "<td>" + std::to_string(row.epochs) + "</td><td>" + HtmlEscape(row.threshold) + "</td><td>" + state +
             "</td><td><b>" + Cell(row.objective) + "</b>" +
             (row.objective_sd ? " &plusmn; " + Cell(row.objective_sd) : std::string()) + "</td>";
    if (row.score)
      table += "<td>" + Cell(row.score->presence_auroc) + "</td><td>" + Cell(row.score->location_auroc) + "</td><td>" +
               FormatNumber(row.score->kium_accuracy, 4) + "</td><td>" + FormatNumber(row.score->no_location_accuracy, 4) +
               "</td>";
    else
      table += "<td></td><td></td><td></td><td></td>";
    table += "</tr>\n";
  }
  table += "</table>";
  page.AddSection("ranking", "Evaluations, best first (links: each trial's page)", table);
  WriteFileAtomically(summary.path, page.Render());
  return summary;
}

void WriteSweepReportAfterSweep(const std::string& store_dir) {
  try {
    const SweepReportSummary s = WriteSweepReport(store_dir);
    std::printf("sweep: report %s (%d trial pages)\n", s.path.c_str(), s.trial_pages);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sweep: no report: %s\n", e.what());
  }
  std::fflush(stdout);
}

}  // namespace angiotrain
