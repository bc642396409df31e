// Ingest manifests and K-ium folders into one IngestPlan. See manifest.h.
#include "datasets/manifest.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "core/csv.h"
#include "core/error.h"

namespace angiotrain {
namespace fs = std::filesystem;
namespace {

using ViewPaths = std::array<std::string, kNumViews>;

bool AnyLabel(const PatientLabels& p) {
  return p.aneurysm != 0 || std::any_of(p.locations.begin(), p.locations.end(), [](uint8_t l) { return l != 0; });
}

// What both sources share once their files are known: joins the views to the labels (the label
// CSV's rows, or labels the source carries itself) and finds missing views. `files` maps index to
// views; `order` is the source's own order of patients; `source` names it in messages, and
// `missing_view` words the problem of a view with no file.
struct Sources {
  std::map<int64_t, ViewPaths> files;
  std::vector<int64_t> order;
  std::string source;
  std::map<int64_t, PatientLabels> own_labels;  // from the manifest's label columns
  std::string own_labels_file;
};

template <typename MissingView>
void Join(Sources s, const std::string& labels_csv, MissingView missing_view, IngestPlan* plan) {
  std::vector<IngestPatient> patients;
  std::vector<PatientLabels> label_rows;
  if (!labels_csv.empty()) {
    LabelTable table = ReadLabelTable(labels_csv);
    plan->has_labels = true;
    plan->labels_file = labels_csv;
    for (const auto& labels : table.patients) {
      auto it = s.files.find(labels.index);
      if (it == s.files.end()) {
        plan->problems.push_back({labels.index, labels_csv + ": patient " + std::to_string(labels.index) +
                                                    " has a label row but no images in " + s.source});
        continue;
      }
      patients.push_back({labels, it->second});
      s.files.erase(it);
    }
    for (int64_t index : s.order) {
      auto it = s.files.find(index);
      if (it == s.files.end()) continue;
      for (const auto& path : it->second) {
        if (path.empty()) continue;
        plan->problems.push_back({index, path + ": patient " + std::to_string(index) + " has images but no row in " +
                                             labels_csv});
        break;
      }
    }
    label_rows = std::move(table.patients);
  } else {
    plan->has_labels = !s.own_labels_file.empty();
    plan->labels_file = s.own_labels_file;
    for (int64_t index : s.order) {
      IngestPatient p;
      auto own = s.own_labels.find(index);
      if (own != s.own_labels.end()) p.labels = own->second;
      p.labels.index = static_cast<int32_t>(index);
      p.views = s.files.at(index);
      patients.push_back(p);
      label_rows.push_back(p.labels);
    }
  }
  plan->every_label_zero =
      plan->has_labels && !label_rows.empty() && std::none_of(label_rows.begin(), label_rows.end(), AnyLabel);
  for (auto& p : patients) {
    bool complete = true;
    for (int v = 0; v < kNumViews && complete; ++v) {
      if (p.views[v].empty()) {
        plan->problems.push_back({p.labels.index, missing_view(p.labels.index, v)});
        complete = false;
      }
    }
    if (complete) plan->patients.push_back(std::move(p));
  }
}

bool IsImageExtension(std::string ext) {
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// Splits "1008LI-A.jpg" into index 1008 and view 0. Returns false for files that are not views
// (no view suffix); sets `bad_index` for view files whose prefix is not an integer.
bool ParseViewFileName(const std::string& name, int64_t* index, int* view, bool* bad_index) {
  *bad_index = false;
  fs::path p(name);
  if (!IsImageExtension(p.extension().string())) return false;
  std::string stem = p.stem().string();
  for (int v = 0; v < kNumViews; ++v) {
    const std::string& vn = ViewNames()[v];
    if (stem.size() > vn.size() && stem.compare(stem.size() - vn.size(), vn.size(), vn) == 0) {
      std::string prefix = stem.substr(0, stem.size() - vn.size());
      if (prefix.empty() || prefix.size() > 9 || !std::all_of(prefix.begin(), prefix.end(), ::isdigit)) {
        *bad_index = true;
        return true;
      }
      *index = std::stoll(prefix);
      *view = v;
      return true;
    }
  }
  return false;
}

// True when `path` lies inside `folder` (both absolute and normalised, or both canonical).
bool Inside(const fs::path& path, const fs::path& folder) {
  fs::path rel = path.lexically_relative(folder);
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

IngestPlan PlanFromKiumFolder(const std::string& dir, const std::string& labels_csv) {
  IngestPlan plan;
  Sources s;
  s.source = dir;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    int64_t index = 0;
    int view = 0;
    bool bad_index = false;
    if (!ParseViewFileName(name, &index, &view, &bad_index)) continue;
    std::string path = (fs::path(dir) / name).string();
    if (bad_index) {
      plan.problems.push_back({-1, path + ": file name does not start with an integer patient index ({Index}{View}.jpg)"});
      continue;
    }
    if (!s.files.count(index)) s.order.push_back(index);
    auto& slot = s.files[index][view];
    if (!slot.empty()) {
      plan.problems.push_back({index, path + ": second file for view " + ViewNames()[view] + " of patient " +
                                          std::to_string(index) + " (also " + slot + ")"});
      continue;
    }
    slot = path;
  }
  std::sort(s.order.begin(), s.order.end());
  Join(std::move(s), labels_csv,
       [&](int64_t index, int v) {
         return (fs::path(dir) / (std::to_string(index) + ViewNames()[v] + ".jpg")).string() + ": missing view " +
                ViewNames()[v] + " of patient " + std::to_string(index);
       },
       &plan);
  return plan;
}

IngestPlan PlanFromManifest(const std::string& manifest, const std::string& labels_csv, bool allow_outside) {
  CsvTable csv = ReadCsv(manifest);
  const int index_col = csv.Column("Index"), view_col = csv.Column("View"), path_col = csv.Column("Path");
  if (index_col < 0 || view_col < 0 || path_col < 0) {
    throw FileError(manifest, "a manifest needs the columns Index, View and Path (found " +
                                  std::to_string(csv.header.size()) + " column(s), first '" + csv.header[0] + "')");
  }
  // Label columns: none, or Aneurysm and all 21 locations.
  const int aneurysm_col = csv.Column("Aneurysm");
  std::array<int, kNumLocations> loc_cols{};
  std::vector<std::string> present, missing;
  for (int k = -1; k < kNumLocations; ++k) {
    const std::string& name = k < 0 ? std::string("Aneurysm") : LocationNames()[k];
    int c = csv.Column(name);
    if (k >= 0) loc_cols[k] = c;
    (c >= 0 ? present : missing).push_back(name);
  }
  const bool own_labels = !present.empty();
  if (own_labels && !missing.empty()) {
    std::string list;
    for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw FileError(manifest, "has label column(s) but not all: missing " + list +
                                  " (give Aneurysm and the 21 locations, or none and --labels)");
  }
  for (const std::string& h : csv.header) {
    if (h != "Index" && h != "View" && h != "Path" && h != "Aneurysm" && LocationIndex(h) < 0) {
      throw FileError(manifest, "unknown column '" + h +
                                    "' (expected Index, View, Path and optionally Aneurysm and the 21 K-ium locations)");
    }
  }
  fs::path folder = fs::path(manifest).parent_path();
  if (folder.empty()) folder = ".";
  const fs::path folder_abs = fs::absolute(folder).lexically_normal();
  const fs::path folder_real = fs::weakly_canonical(folder_abs);

  IngestPlan plan;
  Sources s;
  s.source = manifest;
  s.own_labels_file = own_labels ? manifest : "";
  std::map<int64_t, int> label_line;  // line of the row a patient's manifest labels came from
  for (size_t r = 0; r < csv.rows.size(); ++r) {
    const std::string where = manifest + ":" + std::to_string(csv.line_numbers[r]);
    const long index = ParseCsvInteger(csv, r, index_col);
    if (index < 0 || index > INT32_MAX) throw Error(where + ": column Index: " + std::to_string(index) + " is out of range");
    const std::string& view_name = csv.rows[r][view_col];
    const int view = ViewIndex(view_name);
    if (view < 0) {
      std::string names;
      for (const auto& n : ViewNames()) names += (names.empty() ? "" : ", ") + n;
      throw Error(where + ": column View: '" + view_name + "' is not a K-ium view (" + names + ")");
    }
    const std::string& cell = csv.rows[r][path_col];
    if (cell.empty()) throw Error(where + ": column Path is empty");
    const fs::path given(cell);
    const fs::path path = (given.is_absolute() ? given : folder_abs / given).lexically_normal();
    if (!allow_outside) {
      if (!Inside(path, folder_abs)) {
        throw Error(where + ": path '" + cell + "' leaves the manifest's folder " + folder_abs.string() +
                    (given.is_absolute() ? "" : " through '..'") + "; --allow-outside allows it");
      }
      const fs::path real = fs::weakly_canonical(path);
      if (!Inside(real, folder_real)) {
        throw Error(where + ": path '" + cell + "' leads through a symbolic link to " + real.string() +
                    ", outside the manifest's folder " + folder_real.string() + "; --allow-outside allows it");
      }
    }
    if (own_labels) {
      PatientLabels labels;
      labels.index = static_cast<int32_t>(index);
      auto binary = [&](int c) -> uint8_t {
        const std::string& v = csv.rows[r][c];
        if (v != "0" && v != "1") throw Error(where + ": column " + csv.header[c] + ": label '" + v + "' is not 0 or 1");
        return v == "1";
      };
      labels.aneurysm = binary(aneurysm_col);
      for (int k = 0; k < kNumLocations; ++k) labels.locations[k] = binary(loc_cols[k]);
      auto [it, first] = s.own_labels.emplace(index, labels);
      if (first) {
        label_line[index] = csv.line_numbers[r];
      } else if (it->second.aneurysm != labels.aneurysm || it->second.locations != labels.locations) {
        throw Error(where + ": the labels of patient " + std::to_string(index) + " differ from those on line " +
                    std::to_string(label_line[index]) + " (each row of a patient must give the same labels)");
      }
    }
    if (!s.files.count(index)) s.order.push_back(index);
    auto& slot = s.files[index][view];
    if (!slot.empty()) {
      plan.problems.push_back({index, where + ": view " + view_name + " of patient " + std::to_string(index) +
                                          " is named twice (also " + slot + ")"});
      continue;
    }
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (!fs::exists(status)) {
      plan.problems.push_back({index, path.string() + ": no such file (" + where + ", view " + view_name +
                                          " of patient " + std::to_string(index) + ")"});
      slot = "-";  // named, so not also reported as a missing view
      continue;
    }
    if (fs::is_directory(status)) {
      plan.problems.push_back({index, path.string() + ": is a folder, expected an image file (" + where + ")"});
      slot = "-";
      continue;
    }
    slot = path.string();
  }
  // A manifest's labels and the label CSV's must agree wherever both speak of a patient.
  if (own_labels && !labels_csv.empty()) {
    LabelTable table = ReadLabelTable(labels_csv);
    for (const auto& l : table.patients) {
      auto it = s.own_labels.find(l.index);
      if (it == s.own_labels.end()) continue;
      std::string column;
      if (it->second.aneurysm != l.aneurysm) column = "Aneurysm";
      for (int k = 0; k < kNumLocations && column.empty(); ++k)
        if (it->second.locations[k] != l.locations[k]) column = LocationNames()[k];
      if (!column.empty()) {
        const int got = column == "Aneurysm" ? it->second.aneurysm : it->second.locations[LocationIndex(column)];
        throw Error(manifest + ":" + std::to_string(label_line[l.index]) + ": column " + column + " of patient " +
                    std::to_string(l.index) + " is " + std::to_string(got) + ", but " + labels_csv + " says " +
                    std::to_string(1 - got));
      }
    }
  }
  // Patients with a bad row are left out whole: drop the placeholder so they fail only once.
  std::set<int64_t> bad;
  for (const auto& p : plan.problems) bad.insert(p.index);
  for (int64_t index : bad) s.files.erase(index);
  s.order.erase(std::remove_if(s.order.begin(), s.order.end(), [&](int64_t i) { return bad.count(i) > 0; }),
                s.order.end());
  // A patient with a bad row but a label row must not be reported again as "label row but no images".
  Sources joined = std::move(s);
  IngestPlan rest;
  Join(joined, labels_csv,
       [&](int64_t index, int v) {
         return manifest + ": patient " + std::to_string(index) + " has no row for view " + ViewNames()[v];
       },
       &rest);
  for (auto& p : rest.problems) {
    if (!bad.count(p.index)) plan.problems.push_back(std::move(p));
  }
  plan.patients = std::move(rest.patients);
  plan.has_labels = rest.has_labels;
  plan.labels_file = rest.labels_file;
  plan.every_label_zero = rest.every_label_zero;
  return plan;
}

}  // namespace angiotrain
