"""The torchvision peer of the models tests: builds torchvision's EfficientNets and writes what
the C++ tests compare against. Run with /usr/bin/python3 (Debian's python3-torchvision).

  counts OUTDIR                        OUTDIR/counts.txt, "b0 5288548" per line: parameters of
                                       b0..b7 with 3 input channels and 1000 classes
  reference VARIANT SIDE BATCH OUTDIR  OUTDIR/weights.pt (state_dict of a randomly initialised
                                       model with random batch-norm statistics) and
                                       OUTDIR/io.pt ({"input": x, "logits": eval-mode output})
  broken OUTDIR                        b0 state_dicts with one tensor renamed, reshaped or dropped
"""
import os
import sys

import torch
import torchvision


def build(variant):
    return getattr(torchvision.models, "efficientnet_" + variant)(weights=None)


def counts(outdir):
    with open(os.path.join(outdir, "counts.txt"), "w") as f:
        for v in ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"]:
            model = build(v)
            f.write("%s %d\n" % (v, sum(p.numel() for p in model.parameters())))


def reference(variant, side, batch, outdir):
    torch.manual_seed(1234)
    model = build(variant)
    # Random batch-norm affine parameters and running statistics, so that eval-mode batch norm
    # (and its eps) matters for the comparison.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    model.eval()
    x = torch.randn(batch, 3, side, side)
    with torch.no_grad():
        logits = model(x)
    # model.state_dict() is an OrderedDict with _metadata: exactly what users' files hold.
    torch.save(model.state_dict(), os.path.join(outdir, "weights.pt"))
    torch.save({"input": x, "logits": logits}, os.path.join(outdir, "io.pt"))


def broken(outdir):
    sd = build("b0").state_dict()
    renamed = sd.copy()
    renamed["features.1.0.block.9.weight"] = renamed.pop("features.1.0.block.1.fc1.weight")
    torch.save(renamed, os.path.join(outdir, "renamed.pt"))
    reshaped = sd.copy()
    reshaped["features.2.1.block.3.1.running_var"] = torch.ones(25)
    torch.save(reshaped, os.path.join(outdir, "reshaped.pt"))
    dropped = sd.copy()
    del dropped["features.8.1.bias"]
    torch.save(dropped, os.path.join(outdir, "dropped.pt"))


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmd = sys.argv[1]
    if cmd == "counts":
        counts(sys.argv[2])
    elif cmd == "reference":
        reference(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd == "broken":
        broken(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)
