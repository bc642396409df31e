// A small labelled volume file for trainer-level tests: noise images, with a bright square in
// view 0 of every positive patient at a place that depends on its location (so there is
// something to learn). Header-only: only the suites that link the datasets library include it.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"

namespace angiotrain::testing {

// `patients` rows at `resolution` px; odd rows are positive with one location; indices start
// at `first_index`. Returns `path`.
inline std::string WriteTestVolume(const std::string& path, int patients, uint32_t seed = 7,
                                   int32_t first_index = 1000, int resolution = 32) {
  std::mt19937 rng(seed);
  const int R = resolution;
  std::vector<uint8_t> images(static_cast<size_t>(patients) * kNumViews * R * R);
  std::vector<int32_t> index(patients);
  std::vector<uint8_t> aneurysm(patients), locations(static_cast<size_t>(patients) * kNumLocations);
  for (auto& v : images) v = static_cast<uint8_t>(rng() % 120);
  for (int p = 0; p < patients; ++p) {
    index[p] = first_index + p;
    aneurysm[p] = p % 2;
    if (!aneurysm[p]) continue;
    const int loc = static_cast<int>(rng() % kNumLocations);
    locations[static_cast<size_t>(p) * kNumLocations + loc] = 1;
    const int y = (loc / 5) * 6 + 2, x = (loc % 5) * 6 + 2;
    for (int dy = 0; dy < 4; ++dy)
      for (int dx = 0; dx < 4; ++dx) images[(static_cast<size_t>(p) * kNumViews * R + y + dy) * R + x + dx] = 250;
  }
  VolumeProvenance provenance;
  provenance.source = "angiotrain test";
  VolumeWriter writer(path, MPI_COMM_SELF, patients, R, true, provenance);
  writer.WriteRows(0, images, index, aneurysm, locations);
  writer.Commit(patients, 0);
  return path;
}

}  // namespace angiotrain::testing
