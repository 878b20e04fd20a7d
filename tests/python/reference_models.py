"""PyTorch reference models for tests/model_reference.rs (torchvision and timm, built untrained).

Usage: reference_models.py OUT_DIR NAME[:io] ...
For each sk-exp registry NAME writes OUT_DIR/NAME.shapes.txt ("key d0,d1,..." per state_dict entry,
num_batches_tracked left out). With ":io" it also writes the weights (NAME.safetensors, with randomised BN
statistics so that BN is not the identity) and a forward pass in eval mode (NAME.io.safetensors: input, output).
"""
import sys
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from torchvision import models
from torchvision.models.densenet import DenseNet
from torchvision.models.shufflenetv2 import ShuffleNetV2

REFERENCES = {
    "shufflenetv2_0.5x": lambda: ShuffleNetV2([4, 6, 6], [24, 48, 96, 192, 1024]),
    "shufflenetv2_1.0x": lambda: ShuffleNetV2([4, 6, 6], [24, 116, 232, 464, 1024]),
    "shufflenetv2_1.0x_484": models.shufflenet_v2_x1_0,
    "densenet169": models.densenet169,
    "densenet232_k48": lambda: DenseNet(48, (6, 12, 48, 48), 96),
    "dpn68": lambda: timm.create_model("dpn68", pretrained=False),
    "dpn92": lambda: timm.create_model("dpn92", pretrained=False),
    "dpn98": lambda: timm.create_model("dpn98", pretrained=False),
}


def state(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def main(out_dir, requests):
    out = Path(out_dir)
    torch.manual_seed(0)
    for request in requests:
        name, _, mode = request.partition(":")
        model = REFERENCES[name]().eval()
        lines = [f"{k} {','.join(str(d) for d in v.shape)}" for k, v in state(model).items()]
        (out / f"{name}.shapes.txt").write_text("\n".join(lines) + "\n")
        if mode == "io":
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.weight.uniform_(0.5, 1.5)
                        m.bias.normal_(0, 0.1)
                        m.running_mean.normal_(0, 0.1)
                        m.running_var.uniform_(0.5, 1.5)
                x = torch.randn(2, 3, 64, 64)
                y = model(x)
            save_file({k: v.contiguous() for k, v in state(model).items()}, str(out / f"{name}.safetensors"))
            save_file({"input": x, "output": y}, str(out / f"{name}.io.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
