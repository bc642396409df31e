// The one place that knows the K-ium 2023 layout: the 8 views (order = channel order of the
// volume file), the 21 artery locations (order = CSV column order = label/logit order), and
// which injection fills which artery.
#pragma once

#include <array>
#include <string>

namespace angiotrain {

constexpr int kNumViews = 8;
constexpr int kNumLocations = 21;

// LI/RI: left/right internal carotid injection; LV/RV: left/right vertebral. A: frontal, B: lateral.
inline const std::array<std::string, kNumViews>& ViewNames() {
  static const std::array<std::string, kNumViews> names = {"LI-A", "LI-B", "RI-A", "RI-B",
                                                            "LV-A", "LV-B", "RV-A", "RV-B"};
  return names;
}

inline const std::array<std::string, kNumLocations>& LocationNames() {
  static const std::array<std::string, kNumLocations> names = {
      "L_ICA",  "R_ICA",  "L_PCOM", "R_PCOM", "L_AntChor", "R_AntChor", "L_ACA",
      "R_ACA",  "L_ACOM", "R_ACOM", "L_MCA",  "R_MCA",     "L_VA",      "R_VA",
      "L_PICA", "R_PICA", "L_SCA",  "R_SCA",  "BA",        "L_PCA",     "R_PCA"};
  return names;
}

// Index of a view or location name, or -1.
int ViewIndex(const std::string& name);
int LocationIndex(const std::string& name);

}  // namespace angiotrain
