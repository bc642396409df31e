// datasets/dicom_view.h in a build without DCMTK (ANGIOTRAIN_WITH_DICOM off or not found):
// DICOM files are named and refused, and the phantom cannot be written as DICOM.
#include "core/error.h"
#include "datasets/dicom_view.h"

namespace angiotrain {

bool DicomSupported() { return false; }

std::string DecodeDicomView(const std::string&, int, const DicomFrameRule&, uint8_t*) {
  return "is a DICOM file, and this angiotrain was built without DICOM support (install libdcmtk-dev, "
         "scripts/install-deps.sh, and rebuild)";
}

void WriteDicomImage(const std::string& path, const DicomImageToWrite&) {
  throw FileError(path, "cannot write DICOM: this angiotrain was built without DICOM support (libdcmtk-dev)");
}

}  // namespace angiotrain
