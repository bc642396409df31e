"""The peer of bench/train_bench.sh: torchvision's EfficientNet-B0 with 8 input channels and 22
outputs trained with PyTorch DistributedDataParallel (gloo), one intra-op thread per rank, Adam,
BCE-with-logits, on random [batch, 8, R, R] inputs. Prints global samples/s. /usr/bin/python3."""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision


def worker(rank, a):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(a.port)
    dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_b0(num_classes=22)
    stem = model.features[0][0]
    model.features[0][0] = torch.nn.Conv2d(8, stem.out_channels, 3, 2, 1, bias=False)
    model.train()
    ddp = torch.nn.parallel.DistributedDataParallel(model) if a.ranks > 1 else model
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(rank)
    x = torch.rand(a.batch, 8, a.resolution, a.resolution, generator=g)
    y = torch.randint(0, 2, (a.batch, 22), generator=g).float()
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            dist.barrier()
            start = time.perf_counter()
        opt.zero_grad()
        loss_fn(ddp(x), y).backward()
        opt.step()
    dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        print("peer ddp-gloo ranks %d batch %d %dx%d: %.2f samples/s (%d steps in %.1f s)"
              % (a.ranks, a.batch, a.resolution, a.resolution, a.ranks * a.batch * a.steps / seconds, a.steps,
                 seconds), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--port", type=int, default=29517)
    a = p.parse_args()
    mp.spawn(worker, args=(a,), nprocs=a.ranks)
