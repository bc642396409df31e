#!/usr/bin/env python3
"""An independent reader of angiotrain's DICOM inputs (pydicom + numpy, no angiotrain code).

  dicom_check.py expect VOLUME MANIFEST RULE   the volume's views must be what pydicom + numpy make
                                                of the manifest's files under RULE (peak, minip, N),
                                                by the rules of datasets/dicom_view.h, at native size
  dicom_check.py describe MANIFEST              one line per file: modality, frames, size, photometric
  dicom_check.py bad KIND PATH                  writes a bad DICOM file: no-image, jpeg2000, short-frames
"""
import csv
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

XA = "1.2.840.10008.5.1.4.1.1.12.1"


def expected_view(path, rule):
    ds = pydicom.dcmread(path)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    arr = ds.pixel_array.astype(np.float64)  # pydicom masks BitsStored and applies the sign
    if frames == 1:
        arr = arr[np.newaxis]
    m = arr * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    s = -1.0 if mono1 else 1.0
    if rule == "peak":
        sums = [np.sum(s * m[f]) for f in range(frames)]
        image = m[int(np.argmin(sums))]
    elif rule == "minip":
        image = s * np.min(s * m, axis=0)
    else:
        image = m[int(rule) - 1]
    if "WindowCenter" in ds and "WindowWidth" in ds:
        c = ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter
        w = ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth
        c, w = float(c), float(w)
        y = np.where(image <= c - 0.5 - (w - 1) / 2, 0.0,
                     np.where(image > c - 0.5 + (w - 1) / 2, 1.0, (image - (c - 0.5)) / max(w - 1, 1e-300) + 0.5))
    else:
        flat = np.sort(image.ravel())
        lo = flat[int(np.floor(0.005 * (flat.size - 1)))]
        hi = flat[int(np.floor(0.995 * (flat.size - 1)))]
        y = np.clip((image - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(image)
    if mono1:
        y = 1 - y
    return np.floor(255 * y + 0.5).astype(np.uint8)


def read_manifest(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def expect(volume, manifest, rule):
    import h5py
    views = ["LI-A", "LI-B", "RI-A", "RI-B", "LV-A", "LV-B", "RV-A", "RV-B"]
    folder = os.path.dirname(os.path.abspath(manifest))
    with h5py.File(volume, "r") as f:
        images = f["images"][...]
        index = list(f["index"][...])
    worst, mismatched, total = 0, 0, 0
    for row in read_manifest(manifest):
        want = expected_view(os.path.join(folder, row["Path"]), rule)
        got = images[index.index(int(row["Index"])), views.index(row["View"])]
        if got.shape != want.shape:
            print(f"shape {got.shape} != {want.shape}")
            return 1
        d = np.abs(got.astype(int) - want.astype(int))
        worst = max(worst, int(d.max()))
        mismatched += int(np.count_nonzero(d))
        total += d.size
    print(f"rule {rule}: {total} pixels, {mismatched} differ, max difference {worst}")
    return 0 if mismatched == 0 else 1


def describe(manifest):
    folder = os.path.dirname(os.path.abspath(manifest))
    for row in read_manifest(manifest):
        ds = pydicom.dcmread(os.path.join(folder, row["Path"]))
        a = ds.pixel_array
        print(f"{row['Index']} {row['View']} {ds.Modality} {ds.SOPClassUID == XA} frames={int(ds.NumberOfFrames)} "
              f"shape={a.shape} {ds.PhotometricInterpretation} bits={ds.BitsStored} series={ds.SeriesDescription} "
              f"max={int(a.max())} xfer={ds.file_meta.TransferSyntaxUID}")
    return 0


def bad(kind, path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = XA
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "XA"
    ds.PatientID = "1"
    ds.is_little_endian, ds.is_implicit_VR = True, False
    if kind != "no-image":
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 16, 12, 11, 0
    if kind == "jpeg2000":
        from pydicom.encaps import encapsulate
        meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
        ds.NumberOfFrames = 1
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    elif kind == "short-frames":
        ds.NumberOfFrames = 3
        ds.PixelData = np.zeros((2, 16, 16), np.uint16).tobytes()  # two frames' worth
        ds["PixelData"].VR = "OW"
    elif kind == "no-image":
        ds.SOPClassUID = meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
        ds.Modality = "SR"
    ds.save_as(path, write_like_original=False)
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "expect":
        sys.exit(expect(sys.argv[2], sys.argv[3], sys.argv[4]))
    if cmd == "describe":
        sys.exit(describe(sys.argv[2]))
    if cmd == "bad":
        sys.exit(bad(sys.argv[2], sys.argv[3]))
    sys.exit(f"unknown command {cmd}")
