"""The PyTorch peer of the export test: rebuilds the exported network with torchvision from the
description (OUT.json), loads the state_dict with strict=True, runs it on every patient of a
volume and compares the probabilities with `angiotrain predict`'s sidecar.

  export_peer.py MODEL.pt VOLUME.h5 PREDICT.probabilities.csv

Prints the largest difference; exits 1 when it exceeds the tolerance or anything fails.

  export_peer.py gradcam MODEL.pt VOLUME.h5 ROW:COLUMN[:LAYER] [ROW:COLUMN[:LAYER] ...]

Prints, as one JSON list, the Grad-CAM of logit COLUMN for volume row ROW computed the textbook
way with a forward hook on features[LAYER] (default 8, the last stage; the reference for
models/grad_cam.h): [{"logit", "coarse": [[...]]}, ...].
"""
import csv
import json
import sys
from functools import partial

import h5py
import numpy as np
import torch
import torchvision
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

TOLERANCE = 1e-5
LOGIT_TOLERANCE = 1e-4


def build(description):
    a, stem, head = description["architecture"], description["stem"], description["head"]
    if a["torchvision_builder"]:
        model = getattr(torchvision.models, a["torchvision_builder"])(weights=None, num_classes=head["out_features"])
    else:
        settings, last_channel = _efficientnet_conf("efficientnet_" + a["variant"], width_mult=a["width_mult"],
                                                    depth_mult=a["depth_mult"])
        model = EfficientNet(settings, a["dropout"], stochastic_depth_prob=a["stochastic_depth_prob"],
                             num_classes=head["out_features"], last_channel=last_channel,
                             norm_layer=partial(torch.nn.BatchNorm2d, eps=a["bn_eps"], momentum=a["bn_momentum"]))
    # The two layers that differ from torchvision's: the 8-channel stem and the task head.
    model.features[0][0] = torch.nn.Conv2d(stem["in_channels"], stem["out_channels"], stem["kernel_size"],
                                           stride=stem["stride"], padding=stem["padding"], bias=stem["bias"])
    assert model.classifier[1].out_features == head["out_features"]
    assert model.classifier[1].in_features == head["in_features"], (model.classifier[1], head)
    return model


def main(weights, volume, probabilities):
    with open(weights + ".json") as f:
        description = json.load(f)
    model = build(description)
    try:
        state = torch.load(weights, weights_only=True)  # the restricted unpickler, where available
    except TypeError:
        state = torch.load(weights)
    assert type(state).__name__ == "OrderedDict", type(state)
    model.load_state_dict(state, strict=True)
    model.eval()

    with h5py.File(volume, "r") as f:
        x = torch.from_numpy(f["images"][:].astype(np.float32) / 255.0)
        index = f["index"][:]
    assert list(x.shape[1:]) == description["input"]["shape"][1:], (x.shape, description["input"])
    with torch.no_grad():
        logits = model(x)
    probs = torch.sigmoid(logits.double()).numpy()

    columns = description["head"]["columns"]
    expected = {}
    with open(probabilities) as f:
        for row in csv.DictReader(f):
            expected[int(row["Index"])] = [float(row[c]) for c in columns]
    worst = worst_logit = 0.0
    for i, idx in enumerate(index):
        p = np.array(expected[int(idx)])
        worst = max(worst, float(np.max(np.abs(probs[i] - p))))
        # predict writes sigmoid(logit) in double: invert it to compare the logits themselves.
        z = np.log(p) - np.log1p(-p)
        worst_logit = max(worst_logit, float(np.max(np.abs(logits[i].double().numpy() - z))))
    print("patients %d, columns %d, largest difference: probability %.3g, logit %.3g"
          % (len(index), len(columns), worst, worst_logit))
    if worst > TOLERANCE or worst_logit > LOGIT_TOLERANCE:
        sys.exit("exported model differs from angiotrain predict (tolerance %g, logits %g)"
                 % (TOLERANCE, LOGIT_TOLERANCE))


def gradcam(weights, volume, *pairs):
    with open(weights + ".json") as f:
        model = build(json.load(f))
    model.load_state_dict(torch.load(weights), strict=True)
    model.eval()
    out = []
    for case in pairs:
        row, column, layer = (case.split(":") + ["8"])[:3]
        out.append(gradcam_one(model, volume, int(row), int(column), int(layer)))
    print(json.dumps(out))


def gradcam_one(model, volume, row, column, layer):
    with h5py.File(volume, "r") as f:
        x = torch.from_numpy(f["images"][row][None].astype(np.float32) / 255.0)
    kept = {}
    hook = model.features[layer].register_forward_hook(lambda module, inputs, output: kept.setdefault("a", output))
    logit = model(x)[0, column]
    hook.remove()
    activations = kept["a"]
    gradient = torch.autograd.grad(logit, activations)[0]
    weights_k = gradient.mean(dim=(2, 3), keepdim=True)
    coarse = torch.relu((weights_k * activations).sum(dim=1))[0]
    return {"logit": logit.item(), "coarse": coarse.tolist()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "gradcam":
        gradcam(*sys.argv[2:])
    else:
        main(*sys.argv[1:4])
