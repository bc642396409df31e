// The parts of datasets/dicom_view.h that need no DICOM library: the --frame rule and telling a
// DICOM file by its first bytes (so a build without DCMTK still names such a file).
#include <algorithm>

#include "datasets/dicom_view.h"

namespace angiotrain {

std::string ParseDicomFrameRule(const std::string& text, DicomFrameRule* rule) {
  if (text == "peak") {
    rule->kind = DicomFrameRule::kPeak;
  } else if (text == "minip") {
    rule->kind = DicomFrameRule::kMinip;
  } else if (!text.empty() && text.size() <= 6 && std::all_of(text.begin(), text.end(), ::isdigit) &&
             std::stoi(text) >= 1) {
    rule->kind = DicomFrameRule::kNumber;
    rule->number = std::stoi(text);
  } else {
    return "--frame '" + text + "' is not peak, minip or a frame number from 1";
  }
  return "";
}

bool LooksLikeDicom(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 132 && bytes[128] == 'D' && bytes[129] == 'I' && bytes[130] == 'C' && bytes[131] == 'M';
}

}  // namespace angiotrain
