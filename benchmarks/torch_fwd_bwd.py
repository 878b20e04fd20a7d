"""PyTorch eager side of `sk-exp bench fwd-bwd`: forward+backward images/s on random data, same output line."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import torch_cifar_models  # noqa: E402


def build(name):
    if name in torch_cifar_models.MODELS:
        return torch_cifar_models.build(name), 32
    import timm
    timm_names = {"sknet50": "skresnext50_32x4d", "resnext50_32x4d": "resnext50_32x4d", "senet50": "seresnext50_32x4d"}
    return timm.create_model(timm_names[name], pretrained=False), 224


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, native = build(a.model)
    size = a.size or native
    model.train()
    x = torch.randn(a.batch, 3, size, size)
    y = torch.randint(0, model(x[:2]).shape[1], (a.batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        model.zero_grad(set_to_none=False)

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.iters):
        step()
    seconds = time.perf_counter() - start
    print(f"impl=pytorch model={a.model} batch={a.batch} size={size} threads={torch.get_num_threads()} "
          f"device=cpu images_per_s={a.batch * a.iters / seconds:.2f}")


if __name__ == "__main__":
    main()
