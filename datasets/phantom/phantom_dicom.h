// The phantom as DICOM, as a hospital export would hold it: one X-ray angiography (XA) series per
// view, multi-frame with the contrast arriving over the frames, in folders named by patient and
// series, with a manifest for `angiotrain ingest --manifest`.
#pragma once

#include <string>

#include "datasets/phantom/phantom.h"

namespace angiotrain {

struct PhantomDicomOptions {
  int frames = 8;    // per series; the peak frame (frames / 2, from 0) is the JPEG phantom's view unchanged
  bool rle = false;  // RLE Lossless instead of uncompressed
};

// Writes OUT_DIR/train_set and OUT_DIR/test_set, each with PAT{Index}/SER{n}/IM0001.dcm (n = 1..8
// in ViewNames() order), manifest.csv (Index,View,Path) and the label CSVs of the JPEG phantom
// (train.csv; test.csv of zeros and groundtruth.csv). Pixels: 12 bits, stored = 16 x grey level of
// the frame (RescaleSlope 1/16, window 128/256, so the peak frame maps back to the JPEG phantom's
// 8-bit view exactly); A views MONOCHROME2, B views MONOCHROME1 (stored = 4080 - 16 x grey).
// Frame f of F holds background + a_f (view - background), background the view's median and
// a_f rising to 1 at the peak frame F/2 and falling to 0.6 at the last. Built like
// GeneratePhantomDataset (same content options, staging folders, --force).
PhantomSummary GeneratePhantomDicom(const PhantomOptions& options, const PhantomDicomOptions& dicom,
                                    const std::string& out_dir);

}  // namespace angiotrain
