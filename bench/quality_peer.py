"""The PyTorch peer of bench/quality_peer.sh: the quickstart recipe in plain PyTorch on the exact
training rows of an angiotrain run, then predictions on the test volume in angiotrain's submission
format (so that `angiotrain evaluate` scores both sides the same way). /usr/bin/python3 (Debian's
python3-torch, python3-torchvision, python3-h5py).

  quality_peer.py --train train.h5 --exclude RUN/validation_predictions.csv --test test.h5
                  --out DIR --seed S [--epochs 12 --batch 16 --lr 2e-3 --warmup-epochs 1 --threads 2]

Recipe: torchvision EfficientNet-B0 built at width 0.5 / depth 0.5 (dropout 0.2, stochastic depth
0.2, torchvision's own initialisation) with an 8-channel stem and 22 logits (Aneurysm, then the 21
locations in the volume's order), Adam (PyTorch defaults but lr), the learning rate of
experiments/training/optimization.cpp LearningRateAt per step (linear warm-up, then cosine to 0),
unweighted BCE-with-logits (mean over N x 22), one process, full batches only, a fresh shuffle per
epoch. Pixels are uint8 / 255 as angiotrain's loader. Writes DIR/output.csv (Aneurysm probability,
locations flagged where p > 0.5), DIR/output.probabilities.csv and DIR/peer.json (final train loss,
training seconds).
"""
import argparse
import csv
import json
import math
import os
import time

import h5py
import numpy as np
import torch
import torchvision
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf


def build_model(width, depth):
    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=depth)
    model = EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=22,
                         last_channel=last_channel)
    stem = model.features[0][0]
    conv = torch.nn.Conv2d(8, stem.out_channels, 3, 2, 1, bias=False)
    torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out")  # as torchvision initialises every conv
    model.features[0][0] = conv
    return model


def read_volume(path):
    with h5py.File(path, "r") as f:
        images = f["images"][...]
        index = f["index"][...]
        labels = None
        if "labels" in f:
            labels = np.concatenate([f["labels/aneurysm"][...][:, None], f["labels/locations"][...]], axis=1)
        locations = [x.decode() if isinstance(x, bytes) else str(x) for x in f.attrs["locations"]]
    return images, index, labels, locations


def learning_rate(lr, step, steps_per_epoch, epochs, warmup_epochs):
    total = epochs * steps_per_epoch
    warmup = int(round(warmup_epochs * steps_per_epoch))
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 0.5 * lr * (1.0 + math.cos(math.pi * progress))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True)
    p.add_argument("--exclude", required=True, help="validation_predictions.csv of the angiotrain run")
    p.add_argument("--test", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--depth", type=float, default=0.5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)

    images, index, labels, locations = read_volume(a.train)
    with open(a.exclude) as f:
        held_out = {int(row["Index"]) for row in csv.DictReader(f)}
    rows = np.array([r for r in range(len(index)) if int(index[r]) not in held_out])
    if len(held_out) == 0 or len(rows) == len(index):
        raise SystemExit(f"{a.exclude}: no validation rows found in {a.train}")
    print(f"peer: {len(rows)} training rows ({len(held_out)} held out), seed {a.seed}", flush=True)

    torch.manual_seed(a.seed)
    model = build_model(a.width, a.depth)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order_gen = torch.Generator().manual_seed(a.seed)
    steps_per_epoch = len(rows) // a.batch
    start = time.perf_counter()
    step = 0
    epoch_loss = 0.0
    for epoch in range(a.epochs):
        model.train()
        perm = rows[torch.randperm(len(rows), generator=order_gen).numpy()]
        epoch_loss = 0.0
        for s in range(steps_per_epoch):
            batch = np.sort(perm[s * a.batch:(s + 1) * a.batch])  # h5py-free: arrays are in memory
            x = torch.from_numpy(images[batch]).float().div_(255.0)
            y = torch.from_numpy(labels[batch]).float()
            for group in opt.param_groups:
                group["lr"] = learning_rate(a.lr, step, steps_per_epoch, a.epochs, a.warmup_epochs)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            epoch_loss += loss.item()
            step += 1
        epoch_loss /= steps_per_epoch
        print(f"peer: epoch {epoch + 1}/{a.epochs} train loss {epoch_loss:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start

    test_images, test_index, _, test_locations = read_volume(a.test)
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(test_index), 32):
            x = torch.from_numpy(test_images[i:i + 32]).float().div_(255.0)
            probs.append(torch.sigmoid(model(x)))
    probs = torch.cat(probs).numpy()
    header = ["Index", "Aneurysm"] + test_locations
    with open(os.path.join(a.out, "output.probabilities.csv"), "w") as f:
        f.write(",".join(header) + "\n")
        for i, row in zip(test_index, probs):
            f.write(",".join([str(int(i))] + ["%.6f" % v for v in row]) + "\n")
    with open(os.path.join(a.out, "output.csv"), "w") as f:
        f.write(",".join(header) + "\n")
        for i, row in zip(test_index, probs):
            f.write(",".join([str(int(i)), "%.6f" % row[0]] + ["1" if v > 0.5 else "0" for v in row[1:]]) + "\n")
    with open(os.path.join(a.out, "peer.json"), "w") as f:
        json.dump({"final_train_loss": epoch_loss, "train_seconds": seconds, "train_rows": int(len(rows)),
                   "torch": torch.__version__, "torchvision": torchvision.__version__}, f)


if __name__ == "__main__":
    main()
