// K-ium label files: train.csv / test.csv / groundtruth.csv (Index, Aneurysm, 21 locations).
// Reading validates everything a silent mistake would corrupt; writing is atomic.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/kium_schema.h"

namespace angiotrain {

struct PatientLabels {
  int32_t index = 0;
  uint8_t aneurysm = 0;
  std::array<uint8_t, kNumLocations> locations{};
};

struct LabelTable {
  std::string path;
  std::vector<PatientLabels> patients;  // in file order
};

// Requires exactly the columns Index, Aneurysm and the 21 locations (any order, no others);
// integer unique indices; labels 0/1. Throws Error naming the file, line and column.
LabelTable ReadLabelTable(const std::string& path);

// Writes the columns in canonical order, atomically.
void WriteLabelTable(const std::string& path, const std::vector<PatientLabels>& patients);

}  // namespace angiotrain
