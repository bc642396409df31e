"""Reference ingest in Python, the way the seed pipeline does it: one process, OpenCV decode of
each view at full size, resize to R x R, stack 8 views, write with h5py (one patient per chunk).
Used by bench/ingest_bench.sh as the peer of `angiotrain ingest`."""
import csv
import sys
import time

import cv2
import h5py
import numpy as np

VIEWS = ["LI-A", "LI-B", "RI-A", "RI-B", "LV-A", "LV-B", "RV-A", "RV-B"]

folder, labels, out, resolution = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cv2.setNumThreads(1)
start = time.perf_counter()
with open(labels) as f:
    rows = list(csv.DictReader(f))
n = len(rows)
with h5py.File(out, "w") as h:
    images = h.create_dataset("images", (n, 8, resolution, resolution), np.uint8,
                              chunks=(1, 8, resolution, resolution))
    index = np.zeros(n, np.int32)
    for i, row in enumerate(rows):
        volume = np.empty((8, resolution, resolution), np.uint8)
        for v, view in enumerate(VIEWS):
            img = cv2.imread(f"{folder}/{row['Index']}{view}.jpg", cv2.IMREAD_GRAYSCALE)
            volume[v] = cv2.resize(img, (resolution, resolution), interpolation=cv2.INTER_AREA)
        images[i] = volume
        index[i] = int(row["Index"])
    h.create_dataset("index", data=index)
elapsed = time.perf_counter() - start
print(f"python reference: {n} patients, {8 * n} images in {elapsed:.2f} s: {8 * n / elapsed:.0f} images/s")
