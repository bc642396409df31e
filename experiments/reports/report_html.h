// The HTML of angiotrain's reports: one self-contained page (no network: Chart.js, the data and
// the images are inside it), built from sections. Charts are drawn by Chart.js (Debian's
// libjs-chart.js), inlined from its installed file; the page's own script only hands the
// embedded JSON data to Chart.js.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace angiotrain {

// Where Chart.js is read from: $ANGIOTRAIN_CHARTJS when set, else Debian's
// /usr/share/javascript/chart.js/chart.min.js.
std::string ChartJsPath();

// Text as HTML (&, <, >, ", ' escaped).
std::string HtmlEscape(const std::string& text);
// RFC 4648 base64 of bytes, for data: URIs.
std::string Base64(const std::string& bytes);
// A number with `digits` decimals, or "—" for nullopt-like NaN.
std::string FormatNumber(double value, int digits = 3);

// A chart: a <canvas> with this id and the Chart.js configuration (type, data, options) that
// the page's script passes to `new Chart(canvas, config)`.
struct ReportChart {
  std::string id;
  nlohmann::json config;
};

// One page. Sections are HTML fragments with an id, listed in the page's table of contents.
class ReportPage {
 public:
  explicit ReportPage(std::string title) : title_(std::move(title)) {}
  void AddSection(const std::string& id, const std::string& heading, const std::string& html);
  void AddChart(ReportChart chart) { charts_.push_back(std::move(chart)); }
  // `<canvas>` markup for a chart added with AddChart (place it inside a section's html).
  static std::string Canvas(const std::string& id, int height = 320);

  // The whole document, Chart.js inlined. Throws Error naming ChartJsPath() and the Debian
  // package when Chart.js is not installed.
  std::string Render() const;

 private:
  std::string title_;
  std::vector<std::pair<std::string, std::string>> toc_;
  std::string body_;
  std::vector<ReportChart> charts_;
};

}  // namespace angiotrain
