"""PyTorch side of `sk-exp bench eval --torchscript`: eval-mode forward images/s of a TorchScript file on
random data, same output line. With --make, first writes the file: timm's skresnext50_32x4d (SKNet-50),
random weights, eval mode, traced by torch.jit.trace at --size."""
import argparse
import time

import torch


def make(path, size):
    import timm
    model = timm.create_model("skresnext50_32x4d", pretrained=False).eval()
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, torch.randn(1, 3, size, size)), path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--torchscript", required=True)
    p.add_argument("--make", action="store_true", help="write the TorchScript file and exit")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    torch.manual_seed(0)
    if a.make:
        make(a.torchscript, a.size)
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    module = torch.jit.load(a.torchscript).eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    with torch.no_grad():
        for _ in range(a.warmup):
            module(x)
        start, fastest = time.perf_counter(), float("inf")
        for _ in range(a.iters):
            iteration = time.perf_counter()
            module(x)
            fastest = min(fastest, time.perf_counter() - iteration)
        seconds = time.perf_counter() - start
    print(f"impl=pytorch source={a.torchscript} batch={a.batch} size={a.size} threads={torch.get_num_threads()} "
          f"device=Cpu best_images_per_s={a.batch / fastest:.2f} images_per_s={a.batch * a.iters / seconds:.2f}")


if __name__ == "__main__":
    main()
