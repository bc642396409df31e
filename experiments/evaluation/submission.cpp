// K-ium submission files. See submission.h.
#include "experiments/evaluation/submission.h"

#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>

#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/error.h"

namespace angiotrain {

namespace {

// Where the K-ium columns sit in one CSV file.
struct KiumColumns {
  int index = -1;
  int aneurysm = -1;
  std::array<int, kNumLocations> locations{};
};

// Requires exactly Index, Aneurysm and the 21 locations, in any order.
KiumColumns ResolveColumns(const CsvTable& csv) {
  KiumColumns c;
  c.index = csv.Column("Index");
  c.aneurysm = csv.Column("Aneurysm");
  std::string missing;
  if (c.index < 0) missing += "Index";
  if (c.aneurysm < 0) missing += std::string(missing.empty() ? "" : ", ") + "Aneurysm";
  for (int k = 0; k < kNumLocations; ++k) {
    c.locations[k] = csv.Column(LocationNames()[k]);
    if (c.locations[k] < 0) missing += std::string(missing.empty() ? "" : ", ") + LocationNames()[k];
  }
  if (!missing.empty()) throw FileError(csv.path, "missing column(s): " + missing);
  for (const std::string& h : csv.header) {
    if (h != "Index" && h != "Aneurysm" && LocationIndex(h) < 0) {
      throw FileError(csv.path, "unknown column '" + h + "' (expected Index, Aneurysm and the 21 K-ium locations)");
    }
  }
  return c;
}

std::string Where(const CsvTable& csv, size_t row, int column) {
  return csv.path + ":" + std::to_string(csv.line_numbers[row]) + ": column " + csv.header[column];
}

// Parses the Index of every row; throws on a non-integer, out-of-range or repeated index.
std::vector<int32_t> ReadIndices(const CsvTable& csv, int column) {
  std::vector<int32_t> indices;
  std::set<int32_t> seen;
  for (size_t r = 0; r < csv.rows.size(); ++r) {
    long v = ParseCsvInteger(csv, r, column);
    if (v < 0 || v > INT32_MAX) throw Error(Where(csv, r, column) + ": " + std::to_string(v) + " is out of range");
    if (!seen.insert(static_cast<int32_t>(v)).second) {
      throw Error(csv.path + ":" + std::to_string(csv.line_numbers[r]) + ": duplicate Index " + std::to_string(v));
    }
    indices.push_back(static_cast<int32_t>(v));
  }
  return indices;
}

double ReadProbability(const CsvTable& csv, size_t row, int column) {
  double v = ParseCsvReal(csv, row, column);
  if (v < 0.0 || v > 1.0) {
    throw Error(Where(csv, row, column) + ": probability '" + csv.rows[row][column] + "' is not in [0, 1]");
  }
  return v;
}

uint8_t ReadFlag(const CsvTable& csv, size_t row, int column) {
  const std::string& s = csv.rows[row][column];
  if (s != "0" && s != "1") throw Error(Where(csv, row, column) + ": '" + s + "' is not 0 or 1");
  return s == "1" ? 1 : 0;
}

// Shortest decimal text that reads back to exactly `v`.
std::string FormatProbability(double v) {
  if (v == 0) v = 0.0;  // no "-0"
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

void CheckProbability(const std::string& template_path, int32_t index, const std::string& what, double v) {
  if (!(v >= 0.0 && v <= 1.0)) {  // also catches NaN
    throw FileError(template_path, "the prediction for Index " + std::to_string(index) + " has " + what + " = " +
                                       FormatProbability(v) + ", not a probability in [0, 1]");
  }
}

void WriteText(const AtomicOutput& out, const std::string& text) {
  std::ofstream f(out.temp_path(), std::ios::binary);
  f << text;
  f.flush();
  if (!f) throw FileError(out.final_path(), "write failed");
}

}  // namespace

std::string ProbabilitiesPathFor(const std::string& submission_path) {
  const std::string ext = ".csv";
  if (submission_path.size() > ext.size() &&
      submission_path.compare(submission_path.size() - ext.size(), ext.size(), ext) == 0) {
    return submission_path.substr(0, submission_path.size() - ext.size()) + ".probabilities.csv";
  }
  return submission_path + ".probabilities.csv";
}

void WriteSubmission(const std::string& template_path, const std::string& out_path,
                     const std::map<int32_t, PatientPrediction>& predictions, const ThresholdRule& rule) {
  const CsvTable csv = ReadCsv(template_path);
  const KiumColumns columns = ResolveColumns(csv);
  const std::vector<int32_t> indices = ReadIndices(csv, columns.index);

  std::vector<LocationProbabilities> probabilities;
  std::vector<double> aneurysm;
  std::vector<PatientPrediction> ordered;
  for (size_t r = 0; r < indices.size(); ++r) {
    auto it = predictions.find(indices[r]);
    if (it == predictions.end()) {
      throw FileError(template_path, "line " + std::to_string(csv.line_numbers[r]) + ": no prediction for Index " +
                                         std::to_string(indices[r]) + " (" + std::to_string(predictions.size()) +
                                         " predictions given)");
    }
    CheckProbability(template_path, indices[r], "Aneurysm", it->second.aneurysm);
    for (int k = 0; k < kNumLocations; ++k) CheckProbability(template_path, indices[r], LocationNames()[k], it->second.locations[k]);
    aneurysm.push_back(it->second.aneurysm);
    probabilities.push_back(it->second.locations);
    ordered.push_back(it->second);
  }
  const std::vector<LocationFlags> flags = rule.Apply(ThresholdInputs{aneurysm, probabilities});

  // Column c of the template holds location location_of[c] (-1: Index or Aneurysm).
  std::vector<int> location_of(csv.header.size(), -1);
  for (int k = 0; k < kNumLocations; ++k) location_of[columns.locations[k]] = k;
  std::string header;
  for (size_t c = 0; c < csv.header.size(); ++c) header += (c ? "," : "") + csv.header[c];
  std::string submission = header + "\n";
  for (size_t r = 0; r < indices.size(); ++r) {
    for (size_t c = 0; c < csv.header.size(); ++c) {
      const std::string sep = c ? "," : "";
      const int col = static_cast<int>(c);
      if (col == columns.index) {
        submission += sep + std::to_string(indices[r]);
      } else if (col == columns.aneurysm) {
        submission += sep + FormatProbability(aneurysm[r]);
      } else {
        submission += sep + (flags[r][location_of[c]] ? "1" : "0");
      }
    }
    submission += "\n";
  }
  const std::string sidecar = ProbabilitiesCsvText(csv.header, indices, ordered);

  // Both files are complete under temporary names before either is renamed into place.
  AtomicOutput submission_out(out_path);
  AtomicOutput sidecar_out(ProbabilitiesPathFor(out_path));
  WriteText(submission_out, submission);
  WriteText(sidecar_out, sidecar);
  sidecar_out.Commit();
  submission_out.Commit();
}

std::vector<std::string> CanonicalHeader() {
  std::vector<std::string> header = {"Index", "Aneurysm"};
  header.insert(header.end(), LocationNames().begin(), LocationNames().end());
  return header;
}

std::string ProbabilitiesCsvText(const std::vector<std::string>& header, const std::vector<int32_t>& indices,
                                 const std::vector<PatientPrediction>& predictions) {
  // Column c holds location location_of[c], or kIndex, or kAneurysm.
  constexpr int kIndex = -2, kAneurysm = -3;
  std::vector<int> location_of;
  std::string text;
  for (const auto& name : header) {
    location_of.push_back(name == "Index" ? kIndex : name == "Aneurysm" ? kAneurysm : LocationIndex(name));
    if (location_of.back() == -1) throw Error("probabilities CSV: '" + name + "' is not a K-ium column");
    text += (text.empty() ? "" : ",") + name;
  }
  text += "\n";
  for (size_t r = 0; r < indices.size(); ++r) {
    for (size_t c = 0; c < header.size(); ++c) {
      if (c) text += ",";
      const int k = location_of[c];
      text += k == kIndex ? std::to_string(indices[r])
                          : FormatProbability(k == kAneurysm ? predictions[r].aneurysm : predictions[r].locations[k]);
    }
    text += "\n";
  }
  return text;
}

namespace {
// The rows of a K-ium CSV at `path` (columns resolved, indices checked), each row's index and line
// set here and its values by `read_values(csv, r, columns, row)`.
template <class Row, class ReadValues>
std::vector<Row> ReadKiumRows(const std::string& path, ReadValues read_values) {
  const CsvTable csv = ReadCsv(path);
  const KiumColumns columns = ResolveColumns(csv);
  const std::vector<int32_t> indices = ReadIndices(csv, columns.index);
  std::vector<Row> rows(indices.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    rows[r].index = indices[r];
    rows[r].line = csv.line_numbers[r];
    read_values(csv, r, columns, rows[r]);
  }
  return rows;
}
}  // namespace

std::vector<SubmissionRow> ReadSubmission(const std::string& path) {
  return ReadKiumRows<SubmissionRow>(path, [](const CsvTable& csv, size_t r, const KiumColumns& columns,
                                              SubmissionRow& row) {
    row.aneurysm = ReadProbability(csv, r, columns.aneurysm);
    for (int k = 0; k < kNumLocations; ++k) row.locations[k] = ReadFlag(csv, r, columns.locations[k]);
  });
}

std::vector<ProbabilityRow> ReadProbabilities(const std::string& path) {
  return ReadKiumRows<ProbabilityRow>(path, [](const CsvTable& csv, size_t r, const KiumColumns& columns,
                                               ProbabilityRow& row) {
    row.prediction.aneurysm = ReadProbability(csv, r, columns.aneurysm);
    for (int k = 0; k < kNumLocations; ++k) row.prediction.locations[k] = ReadProbability(csv, r, columns.locations[k]);
  });
}

}  // namespace angiotrain
