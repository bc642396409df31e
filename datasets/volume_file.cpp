// Parallel HDF5 volume file: collective writer and row reader. See volume_file.h.
#include "datasets/volume_file.h"

#include <hdf5.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <cstring>
#include <memory>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fault_injection.h"

namespace angiotrain {
namespace {

constexpr const char* kFormat = "angiotrain-volume";
constexpr int64_t kFormatVersion = 1;

// HDF5 reports errors as negative return values; turn them into an Error naming the file.
hid_t Check(hid_t id, const std::string& path, const char* what) {
  if (id < 0) throw FileError(path, std::string("HDF5 error: ") + what);
  return id;
}

// Closes an HDF5 identifier of any kind at scope exit.
class Hid {
 public:
  explicit Hid(hid_t id = -1) : id_(id) {}
  ~Hid() { reset(); }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  hid_t get() const { return id_; }
  // Forgets the identifier without closing it (see UnwindingFromAnError).
  void release() { id_ = -1; }
  void reset(hid_t id = -1) {
    if (id_ >= 0) {
      switch (H5Iget_type(id_)) {
        case H5I_FILE: H5Fclose(id_); break;
        case H5I_GROUP: H5Gclose(id_); break;
        case H5I_DATASET: H5Dclose(id_); break;
        case H5I_DATASPACE: H5Sclose(id_); break;
        case H5I_DATATYPE: H5Tclose(id_); break;
        case H5I_ATTR: H5Aclose(id_); break;
        case H5I_GENPROP_LST: H5Pclose(id_); break;
        default: break;
      }
    }
    id_ = id;
  }

 private:
  hid_t id_;
};

// HDF5 prints its whole error stack to stderr by default; every failure here becomes one Error
// naming the file instead. Called before the first HDF5 call of every entry point (the library
// is not thread-safe in this build, so the setting is global).
void QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// Closing a file opened through MPI-IO is collective (MPI_File_close). A rank that unwinds from
// an error of its own must not wait there for ranks that are elsewhere: it leaves its handles
// open and reaches the launcher, whose MPI_Abort ends the job (HDF5 closes what is left at
// MPI_Finalize when every rank failed alike).
bool UnwindingFromAnError() { return std::uncaught_exceptions() > 0; }

hid_t StringType() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void WriteStringAttribute(hid_t obj, const char* name, const std::string& value, const std::string& path) {
  Hid type(StringType());
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(Check(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path, name));
  const char* p = value.c_str();
  Check(H5Awrite(attr.get(), type.get(), &p), path, name);
}

template <size_t N>
void WriteStringArrayAttribute(hid_t obj, const char* name, const std::array<std::string, N>& values,
                               const std::string& path) {
  Hid type(StringType());
  hsize_t dims[1] = {N};
  Hid space(H5Screate_simple(1, dims, nullptr));
  Hid attr(Check(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path, name));
  std::array<const char*, N> ptrs;
  for (size_t i = 0; i < N; ++i) ptrs[i] = values[i].c_str();
  Check(H5Awrite(attr.get(), type.get(), ptrs.data()), path, name);
}

void WriteInt64Attribute(hid_t obj, const char* name, int64_t value, const std::string& path) {
  Hid space(H5Screate(H5S_SCALAR));
  Hid attr(Check(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), path, name));
  Check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), path, name);
}

std::string ReadStringAttribute(hid_t obj, const char* name, const std::string& path) {
  if (H5Aexists(obj, name) <= 0) throw FileError(path, std::string("missing attribute '") + name + "'");
  Hid attr(Check(H5Aopen(obj, name, H5P_DEFAULT), path, name));
  Hid type(StringType());
  Hid space(H5Aget_space(attr.get()));
  if (H5Sget_simple_extent_npoints(space.get()) != 1) throw FileError(path, std::string("attribute '") + name + "' is not a scalar");
  char* p = nullptr;
  Check(H5Aread(attr.get(), type.get(), &p), path, name);
  std::string s = p ? p : "";
  H5free_memory(p);
  return s;
}

std::vector<std::string> ReadStringArrayAttribute(hid_t obj, const char* name, const std::string& path) {
  if (H5Aexists(obj, name) <= 0) throw FileError(path, std::string("missing attribute '") + name + "'");
  Hid attr(Check(H5Aopen(obj, name, H5P_DEFAULT), path, name));
  Hid type(StringType());
  Hid space(H5Aget_space(attr.get()));
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<char*> ptrs(static_cast<size_t>(n), nullptr);
  Check(H5Aread(attr.get(), type.get(), ptrs.data()), path, name);
  std::vector<std::string> out;
  for (char* p : ptrs) {
    out.emplace_back(p ? p : "");
    H5free_memory(p);
  }
  return out;
}

int64_t ReadInt64Attribute(hid_t obj, const char* name, const std::string& path) {
  if (H5Aexists(obj, name) <= 0) throw FileError(path, std::string("missing attribute '") + name + "'");
  Hid attr(Check(H5Aopen(obj, name, H5P_DEFAULT), path, name));
  int64_t v = 0;
  Check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), path, name);
  return v;
}

// A chunked dataset whose first dimension can shrink at commit.
hid_t CreateRowsDataset(hid_t loc, const char* name, hid_t type, std::vector<hsize_t> dims, const std::string& path) {
  std::vector<hsize_t> maxdims = dims;
  maxdims[0] = H5S_UNLIMITED;
  std::vector<hsize_t> chunk = dims;
  chunk[0] = 1;
  if (dims.size() == 1) chunk[0] = 4096;  // small per-row datasets: few large chunks
  Hid space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()));
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
  return Check(H5Dcreate2(loc, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), path, name);
}

// Collective write of rows [first, first+count) of a dataset; count may be 0 on some ranks.
void WriteRowBlock(hid_t dset, hid_t mem_type, int64_t first, int64_t count, const void* data, hid_t dxpl,
                   const std::string& path, const char* name) {
  Hid fspace(H5Dget_space(dset));
  int rank = H5Sget_simple_extent_ndims(fspace.get());
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  std::vector<hsize_t> start(rank, 0), cnt = dims;
  cnt[0] = static_cast<hsize_t>(count);
  start[0] = static_cast<hsize_t>(first);
  std::vector<hsize_t> mdims = cnt;
  if (count == 0) mdims[0] = 1;
  Hid mspace(H5Screate_simple(rank, mdims.data(), nullptr));
  if (count > 0) {
    Check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr), path, name);
  } else {
    H5Sselect_none(fspace.get());
    H5Sselect_none(mspace.get());
  }
  static const uint8_t dummy = 0;
  Check(H5Dwrite(dset, mem_type, mspace.get(), fspace.get(), dxpl, count > 0 ? data : &dummy), path, name);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

// Declaration order matters: members are destroyed in reverse, so datasets and the file close
// before the AtomicOutput removes an uncommitted temporary file.
struct VolumeWriter::Handles {
  std::unique_ptr<AtomicOutput> output;  // rank 0 only: owns the temporary name
  Hid file, images, index, aneurysm, locations, dxpl;
};

VolumeWriter::VolumeWriter(const std::string& path, MPI_Comm comm, int64_t max_rows, int resolution,
                           bool has_labels, const VolumeProvenance& provenance)
    : path_(path), comm_(comm), resolution_(resolution), has_labels_(has_labels), h_(new Handles) {
  // Members close in reverse order: the file before rank 0's AtomicOutput removes it.
  std::unique_ptr<Handles> guard(h_);
  QuietHdf5();
  MPI_Comm_rank(comm_, &rank_);
  // Rank 0 checks the destination and picks the temporary name; every rank learns the outcome,
  // so a bad output path is one collective error, not a hang.
  std::string message;
  if (rank_ == 0) {
    try {
      h_->output = std::make_unique<AtomicOutput>(path);
      temp_path_ = h_->output->temp_path();
    } catch (const Error& e) {
      message = e.what();
    }
  }
  auto bcast_string = [&](std::string& s) {
    int n = static_cast<int>(s.size());
    MPI_Bcast(&n, 1, MPI_INT, 0, comm_);
    s.resize(n);
    MPI_Bcast(s.data(), n, MPI_CHAR, 0, comm_);
  };
  bcast_string(message);
  if (!message.empty()) throw CollectiveError(message);
  bcast_string(temp_path_);

  Hid fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fapl_mpio(fapl.get(), comm_, MPI_INFO_NULL);
  h_->file.reset(H5Fcreate(temp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (h_->file.get() < 0) {
    throw CollectiveError(path + ": cannot create the HDF5 file (temporary " + temp_path_ + ")");
  }
  const hsize_t n = static_cast<hsize_t>(max_rows), r = static_cast<hsize_t>(resolution);
  h_->images.reset(CreateRowsDataset(h_->file.get(), "images", H5T_STD_U8LE, {n, kNumViews, r, r}, path));
  h_->index.reset(CreateRowsDataset(h_->file.get(), "index", H5T_STD_I32LE, {n}, path));
  if (has_labels) {
    Hid group(Check(H5Gcreate2(h_->file.get(), "labels", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path, "labels"));
    h_->aneurysm.reset(CreateRowsDataset(group.get(), "aneurysm", H5T_STD_U8LE, {n}, path));
    h_->locations.reset(CreateRowsDataset(group.get(), "locations", H5T_STD_U8LE, {n, kNumLocations}, path));
  }
  hid_t root = h_->file.get();
  WriteStringAttribute(root, "format", kFormat, path);
  WriteInt64Attribute(root, "format_version", kFormatVersion, path);
  WriteStringArrayAttribute(root, "views", ViewNames(), path);
  WriteStringArrayAttribute(root, "locations", LocationNames(), path);
  WriteInt64Attribute(root, "resolution", resolution, path);
  WriteInt64Attribute(root, "has_labels", has_labels ? 1 : 0, path);
  WriteStringAttribute(root, "source", provenance.source, path);
  WriteStringAttribute(root, "labels_file", provenance.labels_file, path);
  WriteStringAttribute(root, "tool", provenance.tool, path);
  WriteStringAttribute(root, "created", provenance.created, path);

  // Independent transfers: each rank's rows are one contiguous run of whole chunks, so the
  // two-phase aggregation of collective I/O only adds a synchronisation per round.
  h_->dxpl.reset(H5Pcreate(H5P_DATASET_XFER));
  H5Pset_dxpl_mpio(h_->dxpl.get(), H5FD_MPIO_INDEPENDENT);
  guard.release();
}

// Without Commit(): closes the file (collectively: every rank must get here, which callers
// ensure by agreeing on errors before unwinding) and removes the temporary file.
VolumeWriter::~VolumeWriter() {
  if (UnwindingFromAnError())
    for (Hid* h : {&h_->dxpl, &h_->locations, &h_->aneurysm, &h_->index, &h_->images, &h_->file}) h->release();
  delete h_;
}

void VolumeWriter::WriteRows(int64_t first_row, const std::vector<uint8_t>& images,
                             const std::vector<int32_t>& index, const std::vector<uint8_t>& aneurysm,
                             const std::vector<uint8_t>& locations) {
  const int64_t count = static_cast<int64_t>(index.size());
  const size_t volume_bytes = size_t(kNumViews) * resolution_ * resolution_;
  if (images.size() != count * volume_bytes) throw Error("VolumeWriter: images size does not match row count");
  if (has_labels_ && (aneurysm.size() != size_t(count) || locations.size() != size_t(count) * kNumLocations)) {
    throw Error("VolumeWriter: label sizes do not match row count");
  }
  if (count == 0) return;  // independent I/O: nothing to do for an empty share
  hid_t dxpl = h_->dxpl.get();
  WriteRowBlock(h_->images.get(), H5T_NATIVE_UINT8, first_row, count, images.data(), dxpl, path_, "images");
  WriteRowBlock(h_->index.get(), H5T_NATIVE_INT32, first_row, count, index.data(), dxpl, path_, "index");
  if (has_labels_) {
    WriteRowBlock(h_->aneurysm.get(), H5T_NATIVE_UINT8, first_row, count, aneurysm.data(), dxpl, path_,
                  "labels/aneurysm");
    WriteRowBlock(h_->locations.get(), H5T_NATIVE_UINT8, first_row, count, locations.data(), dxpl, path_,
                  "labels/locations");
  }
}

void VolumeWriter::Commit(int64_t rows, int64_t skipped) {
  WriteInt64Attribute(h_->file.get(), "skipped", skipped, path_);
  const hsize_t n = static_cast<hsize_t>(rows), r = static_cast<hsize_t>(resolution_);
  const hsize_t images_dims[4] = {n, kNumViews, r, r};
  const hsize_t row_dims[1] = {n};
  const hsize_t loc_dims[2] = {n, kNumLocations};
  Check(H5Dset_extent(h_->images.get(), images_dims), path_, "resize images");
  Check(H5Dset_extent(h_->index.get(), row_dims), path_, "resize index");
  if (has_labels_) {
    Check(H5Dset_extent(h_->aneurysm.get(), row_dims), path_, "resize labels/aneurysm");
    Check(H5Dset_extent(h_->locations.get(), loc_dims), path_, "resize labels/locations");
  }
  h_->images.reset();
  h_->index.reset();
  h_->aneurysm.reset();
  h_->locations.reset();
  h_->dxpl.reset();
  if (H5Fflush(h_->file.get(), H5F_SCOPE_GLOBAL) < 0) throw FileError(path_, "HDF5 flush failed");
  h_->file.reset();  // collective close
  int ok = 1;
  std::string message;
  if (rank_ == 0) {
    try {
      h_->output->Commit();
    } catch (const Error& e) {
      ok = 0;
      message = e.what();
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, comm_);
  committed_ = true;
  if (!ok) throw CollectiveError(message.empty() ? path_ + ": rename failed on rank 0" : message);
}

// ---------------------------------------------------------------------------------------------
// Reader

struct VolumeReader::Handles {
  Hid file, images;
};

void VolumeReader::Open(MPI_Comm comm) {
  const std::string& path = path_;
  auto* h = new Handles;
  std::unique_ptr<Handles> guard(h);
  QuietHdf5();
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl.get(), comm, MPI_INFO_NULL);
  h->file.reset(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (h->file.get() < 0) throw FileError(path, "cannot open the HDF5 file");
  hid_t root = h->file.get();
  if (H5Aexists(root, "format") <= 0 || ReadStringAttribute(root, "format", path) != kFormat) {
    throw FileError(path, "is not an angiotrain volume file (no format=\"angiotrain-volume\" attribute)");
  }
  std::vector<std::string> views = ReadStringArrayAttribute(root, "views", path);
  if (views != std::vector<std::string>(ViewNames().begin(), ViewNames().end())) {
    throw FileError(path, "views attribute does not list the 8 K-ium views in order");
  }
  resolution_ = static_cast<int>(ReadInt64Attribute(root, "resolution", path));
  has_labels_ = ReadInt64Attribute(root, "has_labels", path) != 0;
  provenance_.source = ReadStringAttribute(root, "source", path);
  provenance_.labels_file = ReadStringAttribute(root, "labels_file", path);
  provenance_.tool = ReadStringAttribute(root, "tool", path);
  provenance_.created = ReadStringAttribute(root, "created", path);
  provenance_.skipped = ReadInt64Attribute(root, "skipped", path);

  h->images.reset(H5Dopen2(root, "images", H5P_DEFAULT));
  if (h->images.get() < 0) throw FileError(path, "missing dataset /images");
  Hid space(H5Dget_space(h->images.get()));
  hsize_t dims[4] = {0, 0, 0, 0};
  if (H5Sget_simple_extent_ndims(space.get()) != 4) throw FileError(path, "/images is not 4-dimensional");
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (dims[1] != kNumViews || dims[2] != hsize_t(resolution_) || dims[3] != hsize_t(resolution_)) {
    throw FileError(path, "/images shape does not match [N, 8, resolution, resolution]");
  }
  rows_ = static_cast<int64_t>(dims[0]);

  auto read_all = [&](const char* name, hid_t mem_type, void* out, hsize_t expected) {
    Hid d(H5Dopen2(root, name, H5P_DEFAULT));
    if (d.get() < 0) throw FileError(path, std::string("missing dataset /") + name);
    Hid s(H5Dget_space(d.get()));
    if (H5Sget_simple_extent_npoints(s.get()) != hssize_t(expected)) {
      throw FileError(path, std::string("/") + name + " does not have one entry per row of /images");
    }
    if (expected > 0) Check(H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), path, name);
  };
  index_.resize(rows_);
  read_all("index", H5T_NATIVE_INT32, index_.data(), rows_);
  if (has_labels_) {
    aneurysm_.resize(rows_);
    locations_.resize(size_t(rows_) * kNumLocations);
    read_all("labels/aneurysm", H5T_NATIVE_UINT8, aneurysm_.data(), rows_);
    read_all("labels/locations", H5T_NATIVE_UINT8, locations_.data(), hsize_t(rows_) * kNumLocations);
  }
  h_ = guard.release();
}

namespace {

// Runs `step` on every rank of `comm` and agrees on the outcome: when any rank failed, the first
// failing rank's message becomes every rank's CollectiveError (naming that rank), so it is
// printed once and every rank exits cleanly. Collective (when comm is not MPI_COMM_NULL).
void OnEveryRankOrNone(MPI_Comm comm, const std::function<void()>& step, const std::function<void()>& undo) {
  std::string failure;
  try {
    step();
  } catch (const Error& e) {
    failure = e.what();
  }
  if (comm == MPI_COMM_NULL) {
    if (!failure.empty()) throw Error(failure);
    return;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int mine = failure.empty() ? size : rank, first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return;
  int length = static_cast<int>(failure.size());
  MPI_Bcast(&length, 1, MPI_INT, first, comm);
  failure.resize(static_cast<size_t>(length));
  MPI_Bcast(failure.data(), length, MPI_CHAR, first, comm);
  undo();
  // Only a failure agreed by every rank of the job is a CollectiveError (the launcher prints it
  // once and every rank exits cleanly); over a smaller communicator it is this rank's own.
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  const std::string message =
      first == 0 ? failure : "rank " + std::to_string(first) + " of " + std::to_string(size) + ": " + failure;
  if (size < world) throw Error(message);
  throw CollectiveError(message);
}

}  // namespace

VolumeReader::VolumeReader(const std::string& path, MPI_Comm comm) : path_(path), h_(nullptr) {
  // Before the first HDF5 call: H5Fis_hdf5 on a missing file would print HDF5's error stack
  // (pages of HDF5-DIAG) before our one message naming the file.
  QuietHdf5();
  // Every rank opens the same file. What can be checked alone is checked before the collective
  // open (MPI_File_open), so no rank waits there for one that has already failed.
  OnEveryRankOrNone(
      comm,
      [&] {
        int world_rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
        MaybeInjectFault("volume-open", world_rank);
        if (H5Fis_hdf5(path.c_str()) <= 0) throw FileError(path, "is not an HDF5 file (or does not exist)");
      },
      [] {});
  OnEveryRankOrNone(
      comm, [&] { Open(comm); },
      [&] {
        delete h_;  // every rank is here: closing (collective) is safe
        h_ = nullptr;
      });
}

VolumeReader::~VolumeReader() {
  if (!h_) return;
  if (UnwindingFromAnError()) {
    h_->images.release();
    h_->file.release();
  }
  delete h_;
}

void VolumeReader::ReadImages(const std::vector<int64_t>& rows, std::vector<uint8_t>* out) {
  const size_t volume_bytes = size_t(kNumViews) * resolution_ * resolution_;
  out->resize(rows.size() * volume_bytes);
  if (rows.empty()) return;
  for (int64_t r : rows) {
    if (r < 0 || r >= rows_) throw FileError(path_, "row " + std::to_string(r) + " is out of range");
  }
  // HDF5 returns a union of hyperslabs in file order, so read the sorted unique rows as runs
  // of consecutive rows, then place each in the requested order.
  std::vector<int64_t> sorted(rows);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Hid fspace(H5Dget_space(h_->images.get()));
  H5Sselect_none(fspace.get());
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i + 1;
    while (j < sorted.size() && sorted[j] == sorted[j - 1] + 1) ++j;
    hsize_t start[4] = {hsize_t(sorted[i]), 0, 0, 0};
    hsize_t count[4] = {hsize_t(j - i), kNumViews, hsize_t(resolution_), hsize_t(resolution_)};
    Check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_OR, start, nullptr, count, nullptr), path_, "select rows");
    i = j;
  }
  const bool in_order = sorted.size() == rows.size() && std::equal(sorted.begin(), sorted.end(), rows.begin());
  std::vector<uint8_t> staging;
  uint8_t* dst = out->data();
  if (!in_order) {
    staging.resize(sorted.size() * volume_bytes);
    dst = staging.data();
  }
  hsize_t mdims[1] = {hsize_t(sorted.size() * volume_bytes)};
  Hid mspace(H5Screate_simple(1, mdims, nullptr));
  Check(H5Dread(h_->images.get(), H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, dst), path_,
        "read /images");
  if (!in_order) {
    for (size_t k = 0; k < rows.size(); ++k) {
      size_t pos = std::lower_bound(sorted.begin(), sorted.end(), rows[k]) - sorted.begin();
      std::memcpy(out->data() + k * volume_bytes, staging.data() + pos * volume_bytes, volume_bytes);
    }
  }
}

}  // namespace angiotrain
