"""PyTorch side of `sk-exp bench fwd-bwd | train | eval`: the same work on random data, timed the same way,
printing the same key=value line, so that benchmarks/*.sh can set the two side by side.

  fwd-bwd  forward, cross entropy, backward, zero_grad (PyTorch eager)
  train    forward, cross entropy, backward, torch.optim.SGD step (momentum 0.9, weight decay 5e-4, as the
           CIFAR recipe sk-exp's bench uses), zero_grad; the loss is read back every step, as sk-exp does.
           Under torchrun (WORLD_SIZE > 1): DistributedDataParallel over Gloo (CPU) or NCCL (GPU), --batch per
           rank, images/s of all ranks together, printed by rank 0
  eval     eval-mode forward of a TorchScript file; with --make, first writes that file: timm's
           skresnext50_32x4d (SKNet-50), random weights, eval mode, traced by torch.jit.trace at --size

  fwd-bwd and train take --precision bf16|fp16 (the forward pass under torch.autocast, the loss on fp32
  logits; train in fp16 with torch.amp.GradScaler) and --channels-last (model and batch), as sk-exp's bench.
"""
import contextlib
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import torch_cifar_models  # noqa: E402

TIMM_NAMES = {"sknet50": "skresnext50_32x4d", "resnext50_32x4d": "resnext50_32x4d", "senet50": "seresnext50_32x4d"}


class DepthwiseSk(torch.nn.Module):
    """SK[M=2, G=channels] replacing a depthwise 3x3 conv + BN: paths 3x3 and 3x3 dilation 2, each conv + BN
    without ReLU; fuse (pool, 1x1 to d, BN, ReLU); select (1x1 to 2C, softmax over paths). d is fixed_d, or
    the text's max(C/4, 16) without it."""

    def __init__(self, c, stride, fixed_d):
        super().__init__()
        nn = torch.nn
        self.paths = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, stride, d, d, groups=c, bias=False), nn.BatchNorm2d(c)) for d in (1, 2))
        d = fixed_d or max(c // 4, 16)
        self.fc_reduce = nn.Conv2d(c, d, 1, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.fc_select = nn.Conv2d(d, 2 * c, 1, bias=False)

    def forward(self, x):
        feats = torch.stack([p(x) for p in self.paths], 1)
        z = torch.relu(self.bn(self.fc_reduce(feats.sum(1).mean((2, 3), keepdim=True))))
        a = self.fc_select(z).view(x.shape[0], 2, -1, 1, 1).softmax(1)
        return (feats * a).sum(1)


def shufflenet_v2_sk(widths, fixed_d=None):
    """torchvision's ShuffleNetV2 with the paper's stages {4, 6, 6}, every depthwise conv + BN an SK unit."""
    import torchvision
    model = torchvision.models.ShuffleNetV2([4, 6, 6], widths)
    for block in model.modules():
        if isinstance(block, torchvision.models.shufflenetv2.InvertedResidual):
            for branch, i in ((block.branch1, 0), (block.branch2, 3)):
                if len(branch) > i:
                    conv = branch[i]
                    branch[i] = DepthwiseSk(conv.in_channels, conv.stride[0], fixed_d)
                    branch[i + 1] = torch.nn.Identity()
    return model


def build(name):
    """The PyTorch definition of a registered sk-exp model and its native input side."""
    if name in torch_cifar_models.MODELS:
        return torch_cifar_models.build(name), 32
    if name == "shufflenetv2_1.0x_sk":
        return shufflenet_v2_sk([24, 116, 232, 464, 1024], fixed_d=20), 224
    if name == "shufflenetv2_1.0x_sk_r4":
        return shufflenet_v2_sk([24, 116, 232, 464, 1024]), 224
    if name in TIMM_NAMES:
        import timm
        return timm.create_model(TIMM_NAMES[name], pretrained=False), 224
    sys.exit(f"torch_bench.py: no PyTorch definition of '{name}' here")


def time_loop(step, a, device):
    """Runs `step` a.warmup + a.iters times; returns (mean, fastest-iteration) images/s of the timed ones."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(a.warmup):
        step()
    sync()
    start, fastest = time.perf_counter(), float("inf")
    for _ in range(a.iters):
        iteration = time.perf_counter()
        step()
        sync()
        fastest = min(fastest, time.perf_counter() - iteration)
    return a.batch * a.iters / (time.perf_counter() - start), a.batch / fastest


def model_and_batch(a):
    torch.manual_seed(0)
    model, native = build(a.model)
    size = a.size or native
    model.to(a.device).train()
    x = torch.randn(a.batch, 3, size, size, device=a.device)
    if a.channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model(x[:2]).shape[1], (a.batch,), device=a.device)
    return model, x, y, size


def autocast(a):
    """The forward pass's precision: torch.autocast at bf16/fp16, nothing at fp32."""
    if a.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float16
    return torch.autocast(a.device.split(":")[0], dtype=dtype)


def loss_of(model, x, y, a):
    with autocast(a):
        logits = model(x)
    return torch.nn.functional.cross_entropy(logits.float(), y)


def settings(a):
    return f" precision={a.precision} channels_last={str(a.channels_last).lower()}"


def fwd_bwd(a):
    model, x, y, size = model_and_batch(a)

    def step():
        loss_of(model, x, y, a).backward()
        model.zero_grad(set_to_none=False)

    rate, _ = time_loop(step, a, a.device)
    return f"model={a.model} batch={a.batch} size={size} threads={torch.get_num_threads()} device={a.device}" \
           f"{settings(a)} images_per_s={rate:.2f}"


def train(a):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and a.device.startswith("cuda"):
        a.device = f"cuda:{os.environ['LOCAL_RANK']}"
        torch.cuda.set_device(a.device)
    model, x, y, size = model_and_batch(a)
    params = sum(p.numel() for p in model.parameters())
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if a.device.startswith("cuda") else "gloo")
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(a.device.split(":")[0], enabled=a.precision == "fp16")

    def step():
        loss = loss_of(model, x, y, a)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss.item()

    rate, _ = time_loop(step, a, a.device)
    if world > 1 and int(os.environ["RANK"]) != 0:
        return None
    return f"model={a.model} batch={a.batch} size={size} threads={torch.get_num_threads()} device={a.device}" \
           f"{settings(a)} params={params} world={world} images_per_s={rate * world:.2f}"


def evaluate(a):
    size = a.size or 224
    if a.make:
        import timm
        torch.manual_seed(0)
        model = timm.create_model("skresnext50_32x4d", pretrained=False).eval()
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, torch.randn(1, 3, size, size)), a.torchscript)
        return None
    module = torch.jit.load(a.torchscript).eval()
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, size, size)
    with torch.no_grad():
        rate, best = time_loop(lambda: module(x), a, "cpu")
    return f"source={a.torchscript} batch={a.batch} size={size} threads={torch.get_num_threads()} device=Cpu " \
           f"best_images_per_s={best:.2f} images_per_s={rate:.2f}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, batch in (("fwd-bwd", 8), ("train", 64), ("eval", 8)):
        s = sub.add_parser(name)
        if name == "eval":
            s.add_argument("--torchscript", required=True)
            s.add_argument("--make", action="store_true", help="write the TorchScript file and exit")
        else:
            s.add_argument("--model", required=True)
            s.add_argument("--device", default="cpu")
            s.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
            s.add_argument("--channels-last", action="store_true")
        s.add_argument("--batch", type=int, default=batch)
        s.add_argument("--size", type=int)
        s.add_argument("--iters", type=int, default=5)
        s.add_argument("--warmup", type=int, default=2)
        s.add_argument("--threads", type=int)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    line = {"fwd-bwd": fwd_bwd, "train": train, "eval": evaluate}[a.command](a)
    if line:
        print(f"impl=pytorch {line}")


if __name__ == "__main__":
    main()
