"""PyTorch side of tests/interop.rs: TorchScript files made by PyTorch, and PyTorch runs of sk-exp's exports.

usage:
  interop_reference.py make-torchscript MODEL trace|script OUT_DIR [--size S] [--batch B] [--seed N]
      MODEL from scripts/reference_models.py, resnet18 or resnet18_10 (torchvision's, 10 classes), with seeded
      random weights and randomised BN statistics, in eval mode, saved with torch.jit.save as
      OUT_DIR/model.pt; its state_dict as OUT_DIR/weights.safetensors; OUT_DIR/input.npy (B, 3, S, S) and
      OUT_DIR/logits.npy (its eval-mode logits).
  interop_reference.py run-export MODEL EXPORT_DIR INPUT.npy OUT_DIR
      PyTorch on an `sk-exp export` folder: torch.jit.load(EXPORT_DIR/model.pt) on INPUT, logits to
      OUT_DIR/jit.npy; MODEL with EXPORT_DIR/model.safetensors loaded strictly (only num_batches_tracked may
      be absent), logits to OUT_DIR/state_dict.npy.
  interop_reference.py metrics FILE IMAGES.npy LABELS.npy OUT.npy
      torch.jit.load(FILE) on IMAGES, logits to OUT; prints "images=N top1_err=E1 top5_err=E5 loss=L"
      (errors in %, loss the mean cross entropy) computed from them and LABELS.
  interop_reference.py write-folder ROOT CLASSES PER_CLASS
      an ImageNet-style folder of random JPEGs of random sizes: ROOT/{train,val}/classN/imgK.jpg.
  interop_reference.py torch-save OUT.pt
      a small state_dict written with torch.save (a zip archive that is not TorchScript).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from reference_models import MODELS, randomise_batch_norms  # noqa: E402


def resnet18(num_classes=1000):
    import torchvision
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


MODELS = {**MODELS, "resnet18": resnet18, "resnet18_10": lambda: resnet18(10)}


def logits_of(model, xs):
    with torch.no_grad():
        return model(xs).float().numpy()


def make_torchscript(args):
    torch.manual_seed(args.seed)
    model = MODELS[args.model]()
    randomise_batch_norms(model)
    model.eval()
    xs = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        scripted = torch.jit.trace(model, xs) if args.mode == "trace" else torch.jit.script(model)
    os.makedirs(args.out_dir, exist_ok=True)
    torch.jit.save(scripted, os.path.join(args.out_dir, "model.pt"))
    from safetensors.torch import save_file
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    save_file(state, os.path.join(args.out_dir, "weights.safetensors"))
    np.save(os.path.join(args.out_dir, "input.npy"), xs.numpy())
    np.save(os.path.join(args.out_dir, "logits.npy"), logits_of(model, xs))


def run_export(args):
    from safetensors.torch import load_file

    xs = torch.from_numpy(np.load(args.input))
    module = torch.jit.load(os.path.join(args.export_dir, "model.pt")).eval()
    np.save(os.path.join(args.out_dir, "jit.npy"), logits_of(module, xs))
    model = MODELS[args.model]()
    weights = load_file(os.path.join(args.export_dir, "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"state_dict does not fit {args.model}: missing {missing}, unexpected {unexpected}")
    np.save(os.path.join(args.out_dir, "state_dict.npy"), logits_of(model.eval(), xs))


def metrics(args):
    module = torch.jit.load(args.file).eval()
    labels = torch.from_numpy(np.load(args.labels))
    with torch.no_grad():
        logits = module(torch.from_numpy(np.load(args.images))).float()
    np.save(args.out, logits.numpy())
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hits = top5 == labels.unsqueeze(1)
    n = len(labels)
    top1_err = 100.0 * (n - hits[:, 0].sum().item()) / n
    top5_err = 100.0 * (n - hits.any(dim=1).sum().item()) / n
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    print(f"images={n} top1_err={top1_err:.2f} top5_err={top5_err:.2f} loss={loss:.4f}")


def write_folder(args):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(args.classes):
            folder = os.path.join(args.root, split, f"class{c}")
            os.makedirs(folder, exist_ok=True)
            for k in range(args.per_class):
                h, w = rng.integers(40, 90, size=2)
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, f"img{k}.jpg"))


def torch_save(args):
    torch.save({"weight": torch.zeros(2, 2)}, args.out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make-torchscript")
    p.add_argument("model", choices=sorted(MODELS))
    p.add_argument("mode", choices=["trace", "script"])
    p.add_argument("out_dir")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=make_torchscript)
    p = sub.add_parser("run-export")
    p.add_argument("model", choices=sorted(MODELS))
    p.add_argument("export_dir")
    p.add_argument("input")
    p.add_argument("out_dir")
    p.set_defaults(run=run_export)
    p = sub.add_parser("metrics")
    p.add_argument("file")
    p.add_argument("images")
    p.add_argument("labels")
    p.add_argument("out")
    p.set_defaults(run=metrics)
    p = sub.add_parser("write-folder")
    p.add_argument("root")
    p.add_argument("classes", type=int)
    p.add_argument("per_class", type=int)
    p.set_defaults(run=write_folder)
    p = sub.add_parser("torch-save")
    p.add_argument("out")
    p.set_defaults(run=torch_save)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
