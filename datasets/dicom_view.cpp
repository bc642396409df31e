// DICOM views through DCMTK: decode (with the frame rule and window of dicom_view.h) and write.
//
// Why DCMTK rather than GDCM (both BSD-licensed and packaged by Debian: libdcmtk-dev,
// libgdcm-dev): DCMTK is OFFIS's reference implementation of the standard, its decoders for the
// transfer syntaxes angiography exports use (JPEG baseline/extended/lossless incl. the 12- and
// 16-bit lossless process 14 of most XA archives, JPEG-LS, RLE) are built into the Debian package
// with no further codec library, and its tools (dcmdump, dcmdjpeg; Debian's dcmtk) show a refused file.
// What it lacks is JPEG 2000 (GDCM decodes it through OpenJPEG): such files are refused with their
// transfer syntax named; `gdcmconv --raw` (Debian's libgdcm-tools) converts them.
#include "datasets/dicom_view.h"

#include "dcmtk/config/osconfig.h"  // before the other DCMTK headers, as DCMTK requires
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcrleerg.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <mutex>

#include "core/atomic_file.h"
#include "core/error.h"

namespace angiotrain {
namespace {

void RegisterCodecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
}

// The DICOM linear window (PS3.3 C.11.2.1.2.1) to [0, 1].
double LinearWindow(double x, double center, double width) {
  if (x <= center - 0.5 - (width - 1) / 2) return 0;
  if (x > center - 0.5 + (width - 1) / 2) return 1;
  return (x - (center - 0.5)) / (width - 1) + 0.5;
}

}  // namespace

bool DicomSupported() { return true; }

std::string DecodeDicomView(const std::string& path, int resolution, const DicomFrameRule& rule, uint8_t* out) {
  RegisterCodecs();
  DcmFileFormat file;
  OFCondition status = file.loadFile(path.c_str());
  if (status.bad()) return std::string("is not a readable DICOM file (") + status.text() + ")";
  DcmDataset* ds = file.getDataset();
  if (!ds->tagExistsWithValue(DCM_PixelData)) {
    OFString sop;
    ds->findAndGetOFString(DCM_SOPClassUID, sop);
    const char* name = dcmFindNameOfUID(sop.c_str(), nullptr);
    return "is a DICOM file without an image (no Pixel Data; SOP class " +
           (sop.empty() ? std::string("not given") : std::string(sop.c_str()) + (name ? std::string(" ") + name : "")) +
           ")";
  }
  const DcmXfer xfer(ds->getOriginalXfer());
  if (xfer.isEncapsulated()) {
    if (ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad() ||
        !ds->canWriteXfer(EXS_LittleEndianExplicit)) {
      return std::string("unsupported transfer syntax ") + xfer.getXferID() + " (" + xfer.getXferName() +
             "); DCMTK decodes uncompressed, JPEG, JPEG-LS and RLE (convert others, e.g. with gdcmconv --raw)";
    }
  }
  Uint16 rows = 0, columns = 0, allocated = 0, stored = 0, high = 0, representation = 0, samples = 1;
  OFString photometric;
  if (ds->findAndGetUint16(DCM_Rows, rows).bad() || ds->findAndGetUint16(DCM_Columns, columns).bad() ||
      ds->findAndGetUint16(DCM_BitsAllocated, allocated).bad() || ds->findAndGetUint16(DCM_BitsStored, stored).bad() ||
      ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric).bad()) {
    return "DICOM image lacks Rows, Columns, Bits Allocated, Bits Stored or Photometric Interpretation";
  }
  if (ds->findAndGetUint16(DCM_HighBit, high).bad()) high = stored - 1;
  ds->findAndGetUint16(DCM_PixelRepresentation, representation);
  ds->findAndGetUint16(DCM_SamplesPerPixel, samples);
  if (samples != 1) return "has Samples per Pixel " + std::to_string(samples) + "; angiograms are grayscale (1)";
  const bool mono1 = photometric == "MONOCHROME1";
  if (!mono1 && photometric != "MONOCHROME2") {
    return "Photometric Interpretation " + std::string(photometric.c_str()) + " is not MONOCHROME1 or MONOCHROME2";
  }
  if ((allocated != 8 && allocated != 16) || stored < 1 || stored > allocated || high != stored - 1) {
    return "unsupported pixel layout: Bits Allocated " + std::to_string(allocated) + ", Bits Stored " +
           std::to_string(stored) + ", High Bit " + std::to_string(high) + " (8- to 16-bit, high bit = stored - 1)";
  }
  if (rows == 0 || columns == 0) return "DICOM image has no pixels (Rows or Columns is 0)";
  Sint32 frames = 1;
  if (ds->tagExistsWithValue(DCM_NumberOfFrames) && (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1)) {
    return "Number of Frames is not a positive integer";
  }
  const size_t pixels = size_t(rows) * columns;
  const size_t needed = pixels * size_t(frames) * (allocated / 8);
  DcmElement* element = nullptr;
  ds->findAndGetElement(DCM_PixelData, element);
  const size_t have = element ? element->getLength() : 0;
  if (have < needed) {
    return "Pixel Data holds " + std::to_string(have) + " bytes, but " + std::to_string(frames) + " frame(s) of " +
           std::to_string(rows) + " x " + std::to_string(columns) + " at " + std::to_string(allocated) +
           " bits need " + std::to_string(needed) + " (frames of different sizes, or a cut file)";
  }
  const Uint8* data8 = nullptr;
  const Uint16* data16 = nullptr;
  if (allocated == 8 ? ds->findAndGetUint8Array(DCM_PixelData, data8).bad()
                     : ds->findAndGetUint16Array(DCM_PixelData, data16).bad()) {
    return "Pixel Data cannot be read";
  }
  Float64 slope = 1, intercept = 0;
  if (ds->findAndGetFloat64(DCM_RescaleSlope, slope).bad()) slope = 1;
  if (ds->findAndGetFloat64(DCM_RescaleIntercept, intercept).bad()) intercept = 0;
  const uint32_t mask = stored >= 32 ? 0xFFFFFFFFu : (1u << stored) - 1;
  const uint32_t sign = 1u << (stored - 1);
  auto modality = [&](size_t i) {
    uint32_t raw = (allocated == 8 ? data8[i] : data16[i]) & mask;
    double v = representation == 1 && (raw & sign) ? double(int64_t(raw) - (int64_t(1) << stored)) : double(raw);
    return v * slope + intercept;
  };

  // The frame rule, on display intensity d = s * m (s = -1 for MONOCHROME1, where high is dark).
  const double s = mono1 ? -1 : 1;
  std::vector<double> image(pixels);
  if (rule.kind == DicomFrameRule::kNumber) {
    if (rule.number > frames) {
      return "has " + std::to_string(frames) + " frame(s); --frame " + std::to_string(rule.number) + " asks for frame " +
             std::to_string(rule.number);
    }
    const size_t base = size_t(rule.number - 1) * pixels;
    for (size_t i = 0; i < pixels; ++i) image[i] = modality(base + i);
  } else if (rule.kind == DicomFrameRule::kPeak) {
    int best = 0;
    double best_sum = std::numeric_limits<double>::infinity();
    for (int f = 0; f < frames; ++f) {
      double sum = 0;
      for (size_t i = 0; i < pixels; ++i) sum += s * modality(size_t(f) * pixels + i);
      if (sum < best_sum) {
        best_sum = sum;
        best = f;
      }
    }
    for (size_t i = 0; i < pixels; ++i) image[i] = modality(size_t(best) * pixels + i);
  } else {
    for (size_t i = 0; i < pixels; ++i) image[i] = s * modality(i);
    for (int f = 1; f < frames; ++f)
      for (size_t i = 0; i < pixels; ++i) image[i] = std::min(image[i], s * modality(size_t(f) * pixels + i));
    for (double& v : image) v *= s;
  }

  // The window to [0, 1], then 8 bits.
  Float64 center = 0, width = 0;
  const bool window = ds->findAndGetFloat64(DCM_WindowCenter, center, 0).good() &&
                      ds->findAndGetFloat64(DCM_WindowWidth, width, 0).good() && width >= 1;
  double lo = 0, hi = 0;
  if (!window) {
    std::vector<double> sorted(image);
    std::sort(sorted.begin(), sorted.end());
    lo = sorted[size_t(std::floor(0.005 * double(pixels - 1)))];
    hi = sorted[size_t(std::floor(0.995 * double(pixels - 1)))];
  }
  cv::Mat img(rows, columns, CV_8UC1);
  for (size_t i = 0; i < pixels; ++i) {
    double y = window ? LinearWindow(image[i], center, width)
                      : (hi > lo ? std::clamp((image[i] - lo) / (hi - lo), 0.0, 1.0) : 0.0);
    if (mono1) y = 1 - y;
    img.data[i] = static_cast<uint8_t>(std::floor(255 * y + 0.5));
  }
  if (img.rows != resolution || img.cols != resolution) {
    cv::Mat resized;
    cv::resize(img, resized, cv::Size(resolution, resolution), 0, 0, cv::INTER_AREA);
    img = resized;
  }
  std::memcpy(out, img.data, size_t(resolution) * resolution);
  return "";
}

void WriteDicomImage(const std::string& path, const DicomImageToWrite& im) {
  RegisterCodecs();
  const size_t count = size_t(im.rows) * im.columns * im.frames;
  if (im.pixels.size() != count || im.bits_stored < 8 || im.bits_stored > 16) {
    throw FileError(path, "DICOM image to write is inconsistent (pixels, size or bits)");
  }
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  const int allocated = im.bits_stored == 8 ? 8 : 16;
  auto put = [&](const DcmTagKey& tag, const std::string& value) { ds->putAndInsertString(tag, value.c_str()); };
  put(DCM_SOPClassUID, UID_XRayAngiographicImageStorage);
  put(DCM_SOPInstanceUID, im.instance_uid);
  put(DCM_StudyInstanceUID, im.study_uid);
  put(DCM_SeriesInstanceUID, im.series_uid);
  put(DCM_Modality, "XA");
  put(DCM_ImageType, "ORIGINAL\\PRIMARY\\SINGLE PLANE");
  put(DCM_PatientID, im.patient_id);
  put(DCM_PatientName, "PHANTOM^" + im.patient_id);
  put(DCM_SeriesDescription, im.series_description);
  put(DCM_SeriesNumber, std::to_string(im.series_number));
  put(DCM_InstanceNumber, "1");
  put(DCM_Manufacturer, "angiotrain phantom");
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  put(DCM_PhotometricInterpretation, im.monochrome1 ? "MONOCHROME1" : "MONOCHROME2");
  ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(im.rows));
  ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(im.columns));
  ds->putAndInsertUint16(DCM_BitsAllocated, static_cast<Uint16>(allocated));
  ds->putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(im.bits_stored));
  ds->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(im.bits_stored - 1));
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  put(DCM_NumberOfFrames, std::to_string(im.frames));
  if (im.frames > 1) {
    ds->putAndInsertTagKey(DCM_FrameIncrementPointer, DCM_FrameTime);
    put(DCM_FrameTime, "66.7");
  }
  char number[64];
  std::snprintf(number, sizeof number, "%.10g", im.rescale_slope);
  put(DCM_RescaleSlope, number);
  std::snprintf(number, sizeof number, "%.10g", im.rescale_intercept);
  put(DCM_RescaleIntercept, number);
  put(DCM_RescaleType, "US");
  if (im.has_window) {
    std::snprintf(number, sizeof number, "%.10g", im.window_center);
    put(DCM_WindowCenter, number);
    std::snprintf(number, sizeof number, "%.10g", im.window_width);
    put(DCM_WindowWidth, number);
  }
  OFCondition status;
  if (allocated == 8) {
    std::vector<Uint8> bytes(im.pixels.begin(), im.pixels.end());
    status = ds->putAndInsertUint8Array(DCM_PixelData, bytes.data(), static_cast<unsigned long>(bytes.size()));
  } else {
    status = ds->putAndInsertUint16Array(DCM_PixelData, im.pixels.data(), static_cast<unsigned long>(count));
  }
  if (status.bad()) throw FileError(path, std::string("cannot set Pixel Data: ") + status.text());
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (im.rle) {
    xfer = EXS_RLELossless;
    if (ds->chooseRepresentation(xfer, nullptr).bad() || !ds->canWriteXfer(xfer)) {
      throw FileError(path, "cannot encode RLE Lossless");
    }
  }
  AtomicOutput output(path);
  status = file.saveFile(output.temp_path().c_str(), xfer);
  if (status.bad()) throw FileError(path, std::string("cannot write the DICOM file: ") + status.text());
  output.Commit();
}

}  // namespace angiotrain
