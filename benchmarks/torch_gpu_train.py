"""PyTorch side of benchmarks/gpu_train.sh: the training step of torch_bench.py's `train` as a PyTorch user
runs it on a GPU, with the settings of `sk-exp bench train --precision P [--channels-last]`:
  --precision fp32|bf16|fp16   bf16/fp16: forward and loss under torch.autocast (fp16 with a GradScaler)
  --channels-last              model and input in torch.channels_last
cudnn.benchmark is on (as sk-exp's default on CUDA); the loss is not read back per step (sk-exp does not
either), each timed iteration ends with a device synchronisation on both sides. Prints torch_bench.py's
key=value line plus precision= and channels_last=.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from torch_bench import build, time_loop  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int)
    p.add_argument("--precision", choices=DTYPES, default="fp32")
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model, native = build(a.model)
    size = a.size or native
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(a.device, memory_format=fmt).train()
    x = torch.randn(a.batch, 3, size, size, device=a.device).to(memory_format=fmt)
    with torch.no_grad():
        classes = model(x[:2]).shape[1]
    y = torch.randint(0, classes, (a.batch,), device=a.device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    dtype = DTYPES[a.precision]
    kind = "cuda" if a.device.startswith("cuda") else "cpu"
    scaler = torch.amp.GradScaler(kind, enabled=a.precision == "fp16")

    def step():
        with torch.autocast(kind, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    rate, _ = time_loop(step, a, a.device)
    print(f"impl=pytorch model={a.model} batch={a.batch} size={size} threads={torch.get_num_threads()} "
          f"device={a.device} params={params} precision={a.precision} channels_last={int(a.channels_last)} "
          f"images_per_s={rate:.2f}")


if __name__ == "__main__":
    main()
