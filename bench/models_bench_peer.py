"""The peer of angiotrain_models_bench: torchvision's EfficientNet with the same input channels,
head width, loss and thread count, forward+backward per step on the CPU. /usr/bin/python3."""
import argparse
import time

import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("--variant", default="b0")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--channels", type=int, default=8)
p.add_argument("--resolution", type=int, default=256)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=1)
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = getattr(torchvision.models, "efficientnet_" + a.variant)(num_classes=22)
stem = model.features[0][0]
model.features[0][0] = torch.nn.Conv2d(a.channels, stem.out_channels, 3, 2, 1, bias=False)
model.train()
x = torch.rand(a.batch, a.channels, a.resolution, a.resolution)
y = torch.randint(0, 2, (a.batch, 22)).float()
loss_fn = torch.nn.BCEWithLogitsLoss()
wall, cpu = [], []
for step in range(a.warmup + a.steps):
    start, cpu_start = time.perf_counter(), time.process_time()
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    if step >= a.warmup:
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
wall.sort()
cpu.sort()
print("torchvision %s batch %d channels %d %dx%d threads %d: median %.3f s/step, min %.3f, cpu %.3f s/step"
      % (a.variant, a.batch, a.channels, a.resolution, a.resolution, a.threads, wall[len(wall) // 2], wall[0],
         cpu[len(cpu) // 2]))
