"""The PyTorch side of tests/models/recipe_peer_test.cpp and tests/experiments/adam_peer_test.cpp:
what torchvision / torch.optim / torch.nn do for the quickstart recipe (issue 16), as text files.
/usr/bin/python3 (Debian's python3-torch, python3-torchvision).

  init SEED OUTDIR  OUTDIR/weights.pt: state_dict of torchvision's EfficientNet-B0 at width 0.5 /
                    depth 0.5 with an 8-channel stem and 22 logits, as torchvision initialises it;
                    OUTDIR/stochastic_depth.txt: "features.S.J P MODE" per MBConv block
  adam OUTDIR       OUTDIR/adam.txt: torch.optim.Adam's defaults and a 5-step trajectory
  bce OUTDIR        OUTDIR/bce.txt: BCEWithLogitsLoss (default reduction) on 16 x 22 logits, and
                    its gradient
"""
import os
import sys

import torch
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf


def fmt(t):
    return " ".join("%.9g" % v for v in t.reshape(-1).tolist())


def init(seed, outdir):
    torch.manual_seed(seed)
    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.5, depth_mult=0.5)
    model = EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=22, last_channel=last_channel)
    stem = model.features[0][0]
    conv = torch.nn.Conv2d(8, stem.out_channels, 3, 2, 1, bias=False)
    torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out")  # torchvision's rule for every conv
    model.features[0][0] = conv
    torch.save(model.state_dict(), os.path.join(outdir, "weights.pt"))
    with open(os.path.join(outdir, "stochastic_depth.txt"), "w") as f:
        for name, m in model.named_modules():
            if type(m).__name__ == "MBConv":
                f.write("%s %.9g %s\n" % (name, m.stochastic_depth.p, m.stochastic_depth.mode))


def adam(outdir):
    # Gradients of very different sizes, so that eps (1e-8 against 1e-6, say) and the bias
    # correction both move the result well above float rounding.
    p = torch.nn.Parameter(torch.tensor([0.5, -0.25, 1.0, 0.0, 2.0, -1.5]))
    opt = torch.optim.Adam([p], lr=2e-3)
    d = opt.defaults
    # betas[0] betas[1] eps weight_decay amsgrad
    lines = ["defaults %.9g %.9g %.9g %.9g %d" %
             (d["betas"][0], d["betas"][1], d["eps"], d["weight_decay"], int(d["amsgrad"]))]
    lines.append("start " + fmt(p.detach()))
    for step in range(5):
        g = torch.tensor([1.0, -0.5, 1e-7, -3e-8, 0.01 * (step + 1), 2e-6 * (-1) ** step])
        lines.append("grad " + fmt(g))
        p.grad = g.clone()
        opt.step()
        lines.append("param " + fmt(p.detach()))
    with open(os.path.join(outdir, "adam.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def bce(outdir):
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(16, 22, generator=g) * 3).requires_grad_()
    targets = (torch.rand(16, 22, generator=g) < 0.2).float()
    loss = torch.nn.BCEWithLogitsLoss()(logits, targets)
    loss.backward()
    with open(os.path.join(outdir, "bce.txt"), "w") as f:
        f.write("logits " + fmt(logits.detach()) + "\n")
        f.write("targets " + fmt(targets) + "\n")
        f.write("loss %.9g\n" % loss.item())
        f.write("grad " + fmt(logits.grad) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmd = sys.argv[1]
    if cmd == "init":
        init(int(sys.argv[2]), sys.argv[3])
    elif cmd == "adam":
        adam(sys.argv[2])
    elif cmd == "bce":
        bce(sys.argv[2])
    else:
        sys.exit("unknown command " + cmd)
