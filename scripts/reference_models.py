#!/usr/bin/env python3
"""Reference outputs for the oracle tests: a torchvision/timm model with seeded random weights.

Writes into OUT_DIR (with --shapes-only, just shapes.txt: "key d0,d1,..." per state_dict entry):
  weights.safetensors  the model's state_dict (without num_batches_tracked), float32
  input.safetensors    {"input": (batch, 3, size, size)} drawn from N(0, 1)
  output.safetensors   {"output": eval-mode logits}, float32
  attention.safetensors  (with --attention) every timm SK unit's selection weights, (batch, paths, channels),
                       named as the paper names the units: SK_{stage}_{block}, stages from 2 (layer1 is 2)

BN running statistics and affine parameters are randomised too, so that an eval-mode forward pass
tests that every BN uses its running statistics (fresh ones are mean 0, variance 1: an identity).
"""
import argparse

import torch
from safetensors.torch import save_file


# torchvision and timm are imported only when needed: their imports cost seconds per test.
def torchvision_model(name, **kwargs):
    import torchvision
    return getattr(torchvision.models, name)(weights=None, **kwargs)


def timm_model(name):
    import timm
    return timm.create_model(name, pretrained=False)


def shufflenet_v2_466(width):
    # The paper re-implements ShuffleNetV2 with stages {4, 6, 6} instead of torchvision's {4, 8, 4}.
    import torchvision
    widths = {"0.5x": [24, 48, 96, 192, 1024], "1.0x": [24, 116, 232, 464, 1024]}[width]
    return torchvision.models.ShuffleNetV2([4, 6, 6], widths)


def densenet(growth, blocks, init):
    from torchvision.models.densenet import DenseNet
    return DenseNet(growth, blocks, init)


def cifar_model(name):
    # ResNeXt-29 family for CIFAR, written independently in plain PyTorch (scripts/torch_cifar_models.py).
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_cifar_models
    return torch_cifar_models.build(name)


MODELS = {
    "resnet50": lambda: torchvision_model("resnet50"),
    "resnext50_32x4d": lambda: torchvision_model("resnext50_32x4d"),
    "densenet169": lambda: torchvision_model("densenet169"),
    "shufflenet_v2_466_0.5x": lambda: shufflenet_v2_466("0.5x"),
    "shufflenet_v2_466_1.0x": lambda: shufflenet_v2_466("1.0x"),
    "shufflenet_v2_x1_0": lambda: torchvision_model("shufflenet_v2_x1_0"),
    "densenet232_k48": lambda: densenet(48, (6, 12, 48, 48), 96),
    "dpn68": lambda: timm_model("dpn68"),
    "dpn92": lambda: timm_model("dpn92"),
    "dpn98": lambda: timm_model("dpn98"),
    "seresnext50_32x4d": lambda: timm_model("seresnext50_32x4d"),
    "skresnext50_32x4d": lambda: timm_model("skresnext50_32x4d"),
    "cifar_sknet29": lambda: cifar_model("sknet29"),
    "cifar_senet29": lambda: cifar_model("senet29"),
}


def randomise_batch_norms(model):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)


def record_sk_attention(model):
    """Hooks timm's SelectiveKernelAttn modules (`layer{i}.{j}.conv2.attn`); fills the returned dict."""
    records = {}
    hooked = 0
    for name, module in model.named_modules():
        if type(module).__name__ != "SelectiveKernelAttn":
            continue
        layer, block = name.split(".")[:2]
        label = f"SK_{int(layer.removeprefix('layer')) + 1}_{int(block) + 1}"

        def hook(_module, _inputs, output, label=label):
            records[label] = output.detach().flatten(2).float().contiguous()
        module.register_forward_hook(hook)
        hooked += 1
    if hooked == 0:
        raise SystemExit("--attention: the model has no timm SelectiveKernelAttn module")
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="input side in pixels")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--shapes-only", action="store_true", help="write only the state_dict's keys and shapes")
    parser.add_argument("--attention", action="store_true", help="also write the SK units' selection weights")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = MODELS[args.model]()
    if args.shapes_only:
        lines = [f"{k} {','.join(str(d) for d in v.shape)}\n" for k, v in model.state_dict().items()
                 if not k.endswith("num_batches_tracked")]
        with open(f"{args.out_dir}/shapes.txt", "w") as f:
            f.writelines(lines)
        return
    randomise_batch_norms(model)
    model.eval()
    xs = torch.randn(args.batch, 3, args.size, args.size)
    attention = record_sk_attention(model) if args.attention else None
    with torch.no_grad():
        logits = model(xs).float()
    if attention is not None:
        save_file(attention, f"{args.out_dir}/attention.safetensors")

    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    save_file(state, f"{args.out_dir}/weights.safetensors")
    save_file({"input": xs.contiguous()}, f"{args.out_dir}/input.safetensors")
    save_file({"output": logits.contiguous()}, f"{args.out_dir}/output.safetensors")


if __name__ == "__main__":
    main()
