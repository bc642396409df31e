"""Where a phantom's label signal lives: global image statistics versus a local shape feature.

Reads a phantom train_set (K-ium layout) and prints one JSON line with two cross-validated
AUROCs for predicting Aneurysm:
  global_auroc: logistic regression on the per-view mean and variance (16 features);
  local_auroc:  the patient's strongest round-blob response (Hessian, a few scales), a
                label-blind hand-made detector of small dark round things.
The phantom is right when the first is near chance and the second is well above it.
Usage: phantom_signal.py DIR/train_set
"""
import json
import sys

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

VIEWS = ["LI-A", "LI-B", "RI-A", "RI-B", "LV-A", "LV-B", "RV-A", "RV-B"]


def read_labels(folder):
    with open(f"{folder}/train.csv") as f:
        header = f.readline().strip().split(",")
        rows = [line.strip().split(",") for line in f if line.strip()]
    i, a = header.index("Index"), header.index("Aneurysm")
    return [int(r[i]) for r in rows], np.array([int(r[a]) for r in rows])


def blobness(image, sigmas=(1.5, 2.5, 3.5), margin=8):
    """Largest scale-normalised 'both curvatures dark' response: -lambda_max of the Hessian of
    the darkness; zero for straight vessels, large for round dark blobs."""
    dark = 255.0 - image.astype(np.float32)
    best = 0.0
    for s in sigmas:
        g = cv2.GaussianBlur(dark, (0, 0), s)
        dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
        dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
        half_trace = 0.5 * (dxx + dyy)
        root = np.sqrt(0.25 * (dxx - dyy) ** 2 + dxy ** 2)
        lam_max = half_trace + root  # the less negative eigenvalue
        response = s * s * np.maximum(0.0, -lam_max)
        best = max(best, float(response[margin:-margin, margin:-margin].max()))
    return best


def main():
    folder = sys.argv[1]
    indices, y = read_labels(folder)
    global_features, local_feature = [], []
    for index in indices:
        row, blobs = [], []
        for view in VIEWS:
            image = cv2.imread(f"{folder}/{index}{view}.jpg", cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise SystemExit(f"{folder}/{index}{view}.jpg: cannot read")
            pixels = image.astype(np.float64)
            row += [pixels.mean(), pixels.var()]
            blobs.append(blobness(image))
        global_features.append(row)
        local_feature.append(max(blobs))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    p = cross_val_predict(model, np.array(global_features), y, cv=folds, method="predict_proba")[:, 1]
    print(json.dumps({"patients": len(y), "positive": int(y.sum()),
                      "global_auroc": roc_auc_score(y, p),
                      "local_auroc": roc_auc_score(y, np.array(local_feature))}))


if __name__ == "__main__":
    main()
