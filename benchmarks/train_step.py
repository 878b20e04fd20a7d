"""PyTorch eager side of `sk-exp bench train`: images/s of whole training steps (forward, cross entropy,
backward, torch.optim.SGD step with momentum and weight decay, zero_grad) on random data, same output line."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import torch_cifar_models  # noqa: E402


class DepthwiseSk(torch.nn.Module):
    """SK[M=2, G=channels, r=4, L=16] replacing a depthwise 3x3 conv + BN: paths 3x3 and 3x3 dilation 2,
    each conv + BN without ReLU; fuse (pool, 1x1 to d, BN, ReLU); select (1x1 to 2C, softmax over paths)."""

    def __init__(self, c, stride):
        super().__init__()
        nn = torch.nn
        self.paths = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, stride, d, d, groups=c, bias=False), nn.BatchNorm2d(c)) for d in (1, 2))
        d = max(c // 4, 16)
        self.fc_reduce = nn.Conv2d(c, d, 1, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.fc_select = nn.Conv2d(d, 2 * c, 1, bias=False)

    def forward(self, x):
        feats = torch.stack([p(x) for p in self.paths], 1)
        z = torch.relu(self.bn(self.fc_reduce(feats.sum(1).mean((2, 3), keepdim=True))))
        a = self.fc_select(z).view(x.shape[0], 2, -1, 1, 1).softmax(1)
        return (feats * a).sum(1)


def shufflenet_v2_sk(widths):
    """torchvision's ShuffleNetV2 with the paper's stages {4, 6, 6}, every depthwise conv + BN an SK unit."""
    import torchvision
    model = torchvision.models.ShuffleNetV2([4, 6, 6], widths)
    for block in model.modules():
        if isinstance(block, torchvision.models.shufflenetv2.InvertedResidual):
            for branch, i in ((block.branch1, 0), (block.branch2, 3)):
                if len(branch) > i:
                    conv = branch[i]
                    branch[i] = DepthwiseSk(conv.in_channels, conv.stride[0])
                    branch[i + 1] = torch.nn.Identity()
    return model


def build(name):
    if name in torch_cifar_models.MODELS:
        return torch_cifar_models.build(name), 32
    if name == "shufflenetv2_1.0x_sk":
        return shufflenet_v2_sk([24, 116, 232, 464, 1024]), 224
    sys.exit(f"train_step.py: no PyTorch definition of '{name}' here")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, native = build(a.model)
    size = a.size or native
    params = sum(p.numel() for p in model.parameters())
    model.to(a.device).train()
    # The CIFAR recipe's optimizer (momentum 0.9, weight decay 5e-4), as sk-exp's bench uses it.
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, size, size, device=a.device)
    y = torch.randint(0, model.fc.out_features, (a.batch,), device=a.device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()  # waits for the device, as sk-exp reads its loss back every step

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.iters):
        step()
    seconds = time.perf_counter() - start
    print(f"impl=pytorch model={a.model} batch={a.batch} size={size} threads={torch.get_num_threads()} "
          f"device={a.device} params={params} images_per_s={a.batch * a.iters / seconds:.2f}")


if __name__ == "__main__":
    main()
