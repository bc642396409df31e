"""The peer of angiotrain_models_bench: torchvision's EfficientNet with the same input channels,
head width, loss, thread count, device, precision and optimizer: one training step per iteration
(forward+backward, optionally the Adam update), channels_last on CUDA, timed to a device
synchronise. /usr/bin/python3 on the CPU machines; the GPU machine's python3 there."""
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
p.add_argument("--device", default="cpu")
p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
p.add_argument("--optimizer", default="none", choices=["none", "adam"])
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = getattr(torchvision.models, "efficientnet_" + a.variant)(num_classes=22)
stem = model.features[0][0]
model.features[0][0] = torch.nn.Conv2d(a.channels, stem.out_channels, 3, 2, 1, bias=False)
device = torch.device(a.device)
cuda = device.type == "cuda"
model.to(device)
if cuda:
    model.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
model.train()
x = torch.rand(a.batch, a.channels, a.resolution, a.resolution).to(device)
if cuda:
    x = x.contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 2, (a.batch, 22)).float().to(device)
loss_fn = torch.nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), 1e-4) if a.optimizer == "adam" else None
amp_dtype = torch.bfloat16 if a.precision == "bf16" else None
wall, cpu = [], []
for step in range(a.warmup + a.steps):
    start, cpu_start = time.perf_counter(), time.process_time()
    model.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits = model(x)
    loss = loss_fn(logits.float(), y)
    loss.backward()
    if optimizer is not None:
        optimizer.step()
    if cuda:
        torch.cuda.synchronize()
    if step >= a.warmup:
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
wall.sort()
cpu.sort()
median = wall[len(wall) // 2]
print("torchvision %s batch %d channels %d %dx%d threads %d %s %s optimizer %s: median %.4f s/step, min %.4f, "
      "cpu %.3f s/step, %.1f images/s"
      % (a.variant, a.batch, a.channels, a.resolution, a.resolution, a.threads, a.device, a.precision, a.optimizer,
         median, wall[0], cpu[len(cpu) // 2], a.batch / median))
