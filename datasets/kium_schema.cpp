// Name lookups for the K-ium schema.
#include "datasets/kium_schema.h"

namespace angiotrain {

int ViewIndex(const std::string& name) {
  for (int i = 0; i < kNumViews; ++i)
    if (ViewNames()[i] == name) return i;
  return -1;
}

int LocationIndex(const std::string& name) {
  for (int i = 0; i < kNumLocations; ++i)
    if (LocationNames()[i] == name) return i;
  return -1;
}

}  // namespace angiotrain
