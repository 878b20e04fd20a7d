"""PyTorch side of tests/interop_pth.rs: files written by torch.save, and what sk-exp must read from them.

usage:
  pth_reference.py tensors OUT_DIR
      a state_dict of every dtype sk-exp reads (float32 with NaN, infinities and -0.0, float16, bfloat16,
      float64, int64, int32, uint8, bool), 0-d and empty tensors, and views (a transpose and a slice sharing
      one storage), saved with torch.save as OUT_DIR/zip.pth (the zip format) and OUT_DIR/legacy.pth
      (_use_new_zipfile_serialization=False); the same tensors made contiguous as OUT_DIR/expected.safetensors.
  pth_reference.py hostile OUT_DIR MARKER
      OUT_DIR/hostile_zip.pth and OUT_DIR/hostile_legacy.pth: torch.save of an object whose unpickling
      would run os.system("touch MARKER").
  pth_reference.py resnet50 OUT_DIR
      torchvision's resnet50 with seeded random weights and BN statistics: torch.save(model.state_dict())
      as OUT_DIR/resnet50.pth, the same in the legacy format wrapped the way DistributedDataParallel
      checkpoints are ({"model": {"module.<key>": ...}, "epoch": 3}) as OUT_DIR/ddp_checkpoint.pth, the
      state_dict as OUT_DIR/resnet50.safetensors, OUT_DIR/x.npy (2, 3, 64, 64) and its eval-mode logits
      OUT_DIR/logits.npy.
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from reference_models import randomise_batch_norms  # noqa: E402


def tensors(out_dir):
    torch.manual_seed(0)
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-40])
    base = torch.randn(4, 6)
    state = {
        "f32": torch.cat([torch.randn(11), special]),
        "f16": torch.randn(3, 5).half(),
        "bf16": torch.randn(2, 7).bfloat16(),
        "f64": torch.randn(4).double(),
        "i64": torch.tensor([-(2**62), -1, 0, 7, 2**40]),
        "i32": torch.tensor([-(2**31), 5], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        # Views: the transpose and a strided slice with an offset share base's storage.
        "base": base,
        "transposed": base.t(),
        "slice": base[1:3, ::2],
    }
    torch.save(state, os.path.join(out_dir, "zip.pth"))
    torch.save(state, os.path.join(out_dir, "legacy.pth"), _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out_dir, "expected.safetensors"))


class Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile(out_dir, marker):
    state = {"weight": torch.zeros(2), "payload": Hostile(marker)}
    torch.save(state, os.path.join(out_dir, "hostile_zip.pth"))
    torch.save(state, os.path.join(out_dir, "hostile_legacy.pth"), _use_new_zipfile_serialization=False)


def resnet50(out_dir):
    import torchvision

    torch.manual_seed(5)
    model = torchvision.models.resnet50(weights=None)
    randomise_batch_norms(model)
    model.eval()
    state = model.state_dict()
    torch.save(state, os.path.join(out_dir, "resnet50.pth"))
    checkpoint = {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    torch.save(checkpoint, os.path.join(out_dir, "ddp_checkpoint.pth"), _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out_dir, "resnet50.safetensors"))
    xs = torch.randn(2, 3, 64, 64)
    np.save(os.path.join(out_dir, "x.npy"), xs.numpy())
    with torch.no_grad():
        np.save(os.path.join(out_dir, "logits.npy"), model(xs).numpy())


def main():
    command, out_dir, *rest = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    {"tensors": tensors, "hostile": hostile, "resnet50": resnet50}[command](out_dir, *rest)


if __name__ == "__main__":
    main()
