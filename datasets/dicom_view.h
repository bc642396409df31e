// DICOM views for ingest and the phantom: decoding one X-ray angiography object (single- or
// multi-frame) to an 8-bit view through DCMTK, and writing the phantom's series. Built only with
// DCMTK (ANGIOTRAIN_WITH_DICOM); without it ingest names a DICOM file as such and refuses it.
//
// The rules (README, "DICOM"), in the order they are applied to each pixel:
//   1. stored value (BitsStored bits, signed when PixelRepresentation = 1)
//      -> modality value m = stored * RescaleSlope + RescaleIntercept (1 and 0 when absent);
//   2. the frame rule over the frames' modality values, on the display's sense (contrast is dark:
//      for MONOCHROME1, where high values are dark, "darkest" is the highest m):
//        peak  the frame of greatest contrast filling: the lowest mean display intensity
//              (first such frame on ties);
//        minip the minimum-intensity projection: the darkest value of each pixel over the frames;
//        N     frame N, counted from 1 as DICOM does;
//   3. the window to [0, 1]: the file's first WindowCenter/WindowWidth when both are present (the
//      DICOM linear window, PS3.3 C.11.2.1.2), else the 0.5th and 99.5th percentiles of the chosen
//      image mapped to 0 and 1 and clipped; MONOCHROME1 is then inverted (y -> 1 - y);
//   4. 8 bits: round(255 y), then the area resize to R x R that JPEG views get.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace angiotrain {

// False in a build without DCMTK: DecodeDicomView then refuses every file, naming the reason.
bool DicomSupported();

struct DicomFrameRule {
  enum Kind { kPeak, kMinip, kNumber } kind = kPeak;
  int number = 0;  // kNumber: 1-based
};

// "peak", "minip" or a positive integer; returns "" or the problem.
std::string ParseDicomFrameRule(const std::string& text, DicomFrameRule* rule);

// True when `bytes` start like a DICOM file (the 128-byte preamble then "DICM").
bool LooksLikeDicom(const std::vector<uint8_t>& bytes);

// Decodes the DICOM file at `path` to R x R bytes into `out`. Returns "" or the problem ("is a
// DICOM file without an image ...", "unsupported transfer syntax ...", "Pixel Data holds ...").
std::string DecodeDicomView(const std::string& path, int resolution, const DicomFrameRule& rule, uint8_t* out);

// One image to write: frames x rows x columns stored values (the low `bits_stored` bits used).
struct DicomImageToWrite {
  int rows = 0, columns = 0, frames = 1;
  int bits_stored = 12;  // 8..16; 8 is stored in 8-bit words, more in 16-bit ones
  bool monochrome1 = false;
  double rescale_slope = 1, rescale_intercept = 0;
  bool has_window = false;
  double window_center = 0, window_width = 0;
  std::vector<uint16_t> pixels;
  std::string patient_id, series_description;
  int series_number = 1;
  std::string study_uid, series_uid, instance_uid;  // given, so that the same input writes the same file
  bool rle = false;      // RLE Lossless transfer syntax instead of Explicit VR Little Endian
};

// Writes an X-Ray Angiographic Image (XA) object, atomically. Throws Error naming the file.
void WriteDicomImage(const std::string& path, const DicomImageToWrite& image);

}  // namespace angiotrain
