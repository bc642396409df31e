"""Reads an angiotrain volume file with h5py alone (no angiotrain code), as a user would, and
checks the pixels of the first patient against OpenCV's decode of the source JPEGs."""
import sys

import cv2
import h5py
import numpy as np

path, source = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    images = f["images"]
    print("images", images.shape, images.dtype)
    print("index", f["index"].shape, f["index"].dtype, int(f["index"][0]))
    print("aneurysm", f["labels/aneurysm"].shape, "locations", f["labels/locations"].shape)
    views = [v.decode() if isinstance(v, bytes) else v for v in f.attrs["views"]]
    print("views", ",".join(views))
    print("resolution", int(f.attrs["resolution"]), "format", f.attrs["format"])
    first = int(f["index"][0])
    ok = all(
        np.array_equal(images[0, i], cv2.imread(f"{source}/{first}{v}.jpg", cv2.IMREAD_GRAYSCALE))
        for i, v in enumerate(views)
    )
    print("pixels match OpenCV decode:", ok)
