// The report page (see report_html.h).
#include "experiments/reports/report_html.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace angiotrain {
namespace {

// Inside <script>, "</" could close the element early: "<\/" means the same to JavaScript.
std::string ScriptSafe(const std::string& code) {
  std::string out;
  out.reserve(code.size());
  for (size_t i = 0; i < code.size(); ++i) {
    out += code[i];
    if (code[i] == '<' && i + 1 < code.size() && code[i + 1] == '/') out += '\\';
  }
  return out;
}

constexpr const char* kStyle = R"(
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#1d2733;color:#fff;padding:14px 28px}header h1{margin:0;font-size:1.35em}
header p{margin:4px 0 0;color:#b9c4cf;font-size:.9em}
nav{padding:8px 28px;background:#e3e8ee;font-size:.9em}nav a{margin-right:14px;color:#234}
main{padding:0 28px 40px;max-width:1400px}
section{background:#fff;border-radius:6px;padding:14px 20px;margin:18px 0;box-shadow:0 1px 2px #0002}
h2{font-size:1.1em;margin:0 0 10px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px}
.chart{position:relative;width:100%}
table{border-collapse:collapse;font-size:.86em;margin:6px 0}
th,td{padding:3px 9px;border-bottom:1px solid #e3e8ee;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f3f6}
pre{background:#f0f3f6;padding:10px;overflow:auto;font-size:.85em}
figure{margin:8px 0 16px}figure img{max-width:100%;border:1px solid #ccd}figcaption{font-size:.9em;color:#456}
.note{color:#567;font-size:.88em}
)";

// Hands each chart's configuration to Chart.js.
constexpr const char* kChartScript = R"(
(function () {
  var charts = JSON.parse(document.getElementById('report-charts').textContent);
  charts.forEach(function (c) {
    new Chart(document.getElementById(c.id), c.config);
  });
  document.body.setAttribute('data-charts-drawn', String(charts.length));
})();
)";

}  // namespace

std::string ChartJsPath() {
  const char* env = std::getenv("ANGIOTRAIN_CHARTJS");
  return env && *env ? env : "/usr/share/javascript/chart.js/chart.min.js";
}

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

std::string FormatNumber(double value, int digits) {
  if (!std::isfinite(value)) return "&mdash;";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

void ReportPage::AddSection(const std::string& id, const std::string& heading, const std::string& html) {
  toc_.emplace_back(id, heading);
  body_ += "<section id=\"" + HtmlEscape(id) + "\"><h2>" + HtmlEscape(heading) + "</h2>\n" + html + "\n</section>\n";
}

std::string ReportPage::Canvas(const std::string& id, int height) {
  return "<div class=\"chart\" style=\"height:" + std::to_string(height) + "px\"><canvas id=\"" + HtmlEscape(id) +
         "\"></canvas></div>";
}

std::string ReportPage::Render() const {
  const std::string chartjs = ChartJsPath();
  if (!std::filesystem::is_regular_file(chartjs))
    throw FileError(chartjs, "Chart.js is not installed: install Debian's libjs-chart.js (scripts/install-deps.sh), "
                             "or point ANGIOTRAIN_CHARTJS at chart.min.js");
  nlohmann::json charts = nlohmann::json::array();
  for (const auto& c : charts_) {
    nlohmann::json config = c.config;
    config["options"]["animation"] = false;  // drawn at once: screenshots and printing see the final chart
    config["options"]["maintainAspectRatio"] = false;
    charts.push_back({{"id", c.id}, {"config", config}});
  }
  std::string toc;
  for (const auto& [id, heading] : toc_) toc += "<a href=\"#" + HtmlEscape(id) + "\">" + HtmlEscape(heading) + "</a>";
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" +
                     HtmlEscape(title_) + "</title>\n<style>" + kStyle + "</style>\n";
  html += "<script>/* Chart.js, from " + HtmlEscape(chartjs) + " (MIT license) */\n" + ScriptSafe(ReadFile(chartjs)) +
          "\n</script>\n</head><body>\n";
  html += "<header><h1>" + HtmlEscape(title_) + "</h1><p>angiotrain report</p></header>\n<nav>" + toc + "</nav>\n<main>\n";
  html += body_;
  html += "</main>\n<script type=\"application/json\" id=\"report-charts\">" + ScriptSafe(charts.dump()) + "</script>\n";
  html += "<script>" + std::string(kChartScript) + "</script>\n</body></html>\n";
  return html;
}

}  // namespace angiotrain
