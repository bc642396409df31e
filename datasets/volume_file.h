// The HDF5 volume file: every patient's 8 views as one uint8 volume, plus indices, labels and
// provenance. Written collectively by all MPI ranks (parallel HDF5 over MPI-IO), read by any
// rank for any list of rows. Layout (documented for h5py users in the README):
//   /images              uint8 [N, 8, R, R], chunk [1, 8, R, R] (one patient per chunk)
//   /index               int32 [N]           patient index (the K-ium "Index")
//   /labels/aneurysm     uint8 [N]           only when the file has labels
//   /labels/locations    uint8 [N, 21]       columns in LocationNames() order
//   attributes on /: format ("angiotrain-volume"), format_version, views, locations,
//   resolution, has_labels, source, labels_file, tool, created, skipped
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/kium_schema.h"

namespace angiotrain {

struct VolumeProvenance {
  std::string source;       // folder the images came from
  std::string labels_file;  // CSV the labels came from, or ""
  std::string tool;         // "angiotrain <version>"
  std::string created;      // ISO 8601 UTC
  int64_t skipped = 0;      // patients left out by --skip-bad (set by the writer's Commit)
};

// Collective writer. Every rank of `comm` constructs it with the same arguments, writes its own
// rows, and calls Commit(); the file appears under `path` only after Commit() on all ranks.
// Destroying it without Commit() removes the temporary file.
class VolumeWriter {
 public:
  // `max_rows`: rows reserved; Commit() shrinks the datasets to the rows actually written.
  VolumeWriter(const std::string& path, MPI_Comm comm, int64_t max_rows, int resolution, bool has_labels,
               const VolumeProvenance& provenance);
  ~VolumeWriter();
  VolumeWriter(const VolumeWriter&) = delete;
  VolumeWriter& operator=(const VolumeWriter&) = delete;

  // Writes this rank's contiguous block of rows starting at `first_row` (count may be 0;
  // independent I/O, so ranks need not call it together). images: count*8*R*R bytes; labels
  // may be empty when the file has no labels.
  void WriteRows(int64_t first_row, const std::vector<uint8_t>& images, const std::vector<int32_t>& index,
                 const std::vector<uint8_t>& aneurysm, const std::vector<uint8_t>& locations);
  // Collective: sets the final row count and the number of patients skipped, closes, and
  // renames to the final path.
  void Commit(int64_t rows, int64_t skipped);

 private:
  struct Handles;
  std::string path_, temp_path_;
  MPI_Comm comm_;
  int rank_ = 0, resolution_;
  bool has_labels_, committed_ = false;
  Handles* h_;
};

// Reader for any list of rows. Opened through MPI-IO on `comm` (collective open, independent
// reads) or, with comm == MPI_COMM_NULL, with the POSIX driver by this process alone.
// Not thread-safe (HDF5 is not): use it from one thread at a time (BatchPrefetcher does).
class VolumeReader {
 public:
  VolumeReader(const std::string& path, MPI_Comm comm);
  ~VolumeReader();
  VolumeReader(const VolumeReader&) = delete;
  VolumeReader& operator=(const VolumeReader&) = delete;

  const std::string& path() const { return path_; }
  int64_t rows() const { return rows_; }
  int resolution() const { return resolution_; }
  bool has_labels() const { return has_labels_; }
  const std::vector<int32_t>& index() const { return index_; }
  // Labels of every row (read at open; small). Empty when the file has no labels.
  const std::vector<uint8_t>& aneurysm() const { return aneurysm_; }
  const std::vector<uint8_t>& locations() const { return locations_; }  // rows()*21
  const VolumeProvenance& provenance() const { return provenance_; }

  // Reads `rows` (any order, repeats allowed) as raw uint8 [rows.size(), 8, R, R] into `out`.
  void ReadImages(const std::vector<int64_t>& rows, std::vector<uint8_t>* out);

 private:
  struct Handles;
  void Open(MPI_Comm comm);
  std::string path_;
  int64_t rows_ = 0;
  int resolution_ = 0;
  bool has_labels_ = false;
  std::vector<int32_t> index_;
  std::vector<uint8_t> aneurysm_, locations_;
  VolumeProvenance provenance_;
  Handles* h_;
};

}  // namespace angiotrain
