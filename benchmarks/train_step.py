"""PyTorch eager side of `sk-exp bench train`: images/s of whole training steps (forward, cross entropy,
backward, torch.optim.SGD step with momentum and weight decay, zero_grad) on random data, same output line."""
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
    sys.exit(f"train_step.py: no PyTorch definition of '{name}' here")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, native = build(a.model)
    size = a.size or native
    params = sum(p.numel() for p in model.parameters())
    model.train()
    # The CIFAR recipe's optimizer, as sk-exp's bench uses it.
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, size, size)
    y = torch.randint(0, model.fc.out_features, (a.batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.iters):
        step()
    seconds = time.perf_counter() - start
    print(f"impl=pytorch model={a.model} batch={a.batch} size={size} threads={torch.get_num_threads()} "
          f"device=cpu params={params} images_per_s={a.batch * a.iters / seconds:.2f}")


if __name__ == "__main__":
    main()
