// K-ium label CSVs. See label_table.h.
#include "datasets/label_table.h"

#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/error.h"

namespace angiotrain {

LabelTable ReadLabelTable(const std::string& path) {
  CsvTable csv = ReadCsv(path);
  int index_col = csv.Column("Index");
  int aneurysm_col = csv.Column("Aneurysm");
  std::vector<std::string> missing;
  if (index_col < 0) missing.push_back("Index");
  if (aneurysm_col < 0) missing.push_back("Aneurysm");
  std::array<int, kNumLocations> loc_cols{};
  for (int k = 0; k < kNumLocations; ++k) {
    loc_cols[k] = csv.Column(LocationNames()[k]);
    if (loc_cols[k] < 0) missing.push_back(LocationNames()[k]);
  }
  if (!missing.empty()) {
    std::string list;
    for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw FileError(path, "missing column(s): " + list);
  }
  for (const std::string& h : csv.header) {
    if (h != "Index" && h != "Aneurysm" && LocationIndex(h) < 0) {
      throw FileError(path, "unknown column '" + h + "' (expected Index, Aneurysm and the 21 K-ium locations)");
    }
  }
  LabelTable table;
  table.path = path;
  std::set<int32_t> seen;
  auto binary = [&](size_t r, int c) -> uint8_t {
    const std::string& s = csv.rows[r][c];
    if (s != "0" && s != "1") {
      throw Error(path + ":" + std::to_string(csv.line_numbers[r]) + ": column " + csv.header[c] + ": label '" + s +
                  "' is not 0 or 1");
    }
    return s == "1" ? 1 : 0;
  };
  for (size_t r = 0; r < csv.rows.size(); ++r) {
    PatientLabels p;
    long idx = ParseCsvInteger(csv, r, index_col);
    if (idx < 0 || idx > INT32_MAX) {
      throw Error(path + ":" + std::to_string(csv.line_numbers[r]) + ": column Index: " + std::to_string(idx) +
                  " is out of range");
    }
    p.index = static_cast<int32_t>(idx);
    if (!seen.insert(p.index).second) {
      throw Error(path + ":" + std::to_string(csv.line_numbers[r]) + ": duplicate Index " + std::to_string(p.index));
    }
    p.aneurysm = binary(r, aneurysm_col);
    for (int k = 0; k < kNumLocations; ++k) p.locations[k] = binary(r, loc_cols[k]);
    table.patients.push_back(p);
  }
  return table;
}

void WriteLabelTable(const std::string& path, const std::vector<PatientLabels>& patients) {
  std::ostringstream s;
  s << "Index,Aneurysm";
  for (const auto& name : LocationNames()) s << ',' << name;
  s << '\n';
  for (const auto& p : patients) {
    s << p.index << ',' << int(p.aneurysm);
    for (uint8_t v : p.locations) s << ',' << int(v);
    s << '\n';
  }
  WriteFileAtomically(path, s.str());
}

}  // namespace angiotrain
