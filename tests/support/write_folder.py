"""Writes a small ImageNet-style folder tree and torchvision/PIL reference outputs for it.

usage: write_folder.py OUT

OUT/tree/train/<class>/*, OUT/tree/val/<class>/*: JPEG (colour, greyscale, upper-case extension) and PNG
(RGB, RGBA, palette) images of assorted sizes, plus a non-image file that must be ignored.
OUT/oracle/NAME.rgb: the RGB pixels PIL decodes from image NAME (row-major, interleaved).
OUT/oracle/NAME.crop_T_L_H_W_S.rgb: torchvision F.resized_crop(img, T, L, H, W, [S, S]) (bilinear, PIL path).
OUT/oracle/NAME.eval_R_C.rgb: torchvision Resize(R) then CenterCrop(C).
OUT/oracle/cases.txt: one line per oracle file: NAME width height kind args...
OUT/oracle/rrc_stats.txt: per image size, the mean (width, height, left, top) of 20000 boxes drawn by
torchvision's RandomResizedCrop.get_params (scale (0.08, 1), ratio (3/4, 4/3)).
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as F


def picture(rng, w, h):
    """Smooth colour gradients plus noise: compressible, yet with detail for the resampler to keep."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 17.0 + c) * np.cos(y / 23.0 - c) for c in range(3)], axis=-1)
    noise = rng.normal(0, 20, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def main(out):
    rng = np.random.default_rng(1)
    tree = os.path.join(out, "tree")
    oracle = os.path.join(out, "oracle")
    os.makedirs(oracle, exist_ok=True)
    cases = []
    images = {
        # (split, class, file): (width, height, how)
        ("train", "n01_zebra", "a.JPEG"): (500, 375, "jpeg"),
        ("train", "n01_zebra", "b.jpg"): (333, 500, "jpeg"),
        ("train", "n01_zebra", "c.png"): (97, 64, "png"),
        ("train", "n00_cat", "x.jpeg"): (120, 90, "grey_jpeg"),
        ("train", "n00_cat", "y.png"): (80, 120, "rgba_png"),
        ("train", "n02_dog", "z.png"): (64, 48, "palette_png"),
        ("val", "n00_cat", "v1.JPEG"): (200, 150, "jpeg"),
        ("val", "n02_dog", "v2.png"): (150, 201, "png"),
    }
    for (split, cls, name), (w, h, how) in sorted(images.items()):
        folder = os.path.join(tree, split, cls)
        os.makedirs(folder, exist_ok=True)
        pixels = picture(rng, w, h)
        path = os.path.join(folder, name)
        if how == "jpeg":
            Image.fromarray(pixels).save(path, "JPEG", quality=90)
        elif how == "grey_jpeg":
            Image.fromarray(pixels).convert("L").save(path, "JPEG", quality=90)
        elif how == "png":
            Image.fromarray(pixels).save(path, "PNG")
        elif how == "rgba_png":
            alpha = rng.integers(0, 256, size=(h, w, 1), dtype=np.uint8)
            Image.fromarray(np.concatenate([pixels, alpha], axis=-1), "RGBA").save(path, "PNG")
        elif how == "palette_png":
            Image.fromarray(pixels).convert("P", palette=Image.ADAPTIVE).save(path, "PNG")
        # What torchvision's default loader gives: PIL decode, convert("RGB").
        img = Image.open(path).convert("RGB")
        key = "%s_%s_%s" % (split, cls, name)
        np.asarray(img).tofile(os.path.join(oracle, key + ".rgb"))
        cases.append("%s %d %d decode" % (key, w, h))
        if split == "train" and how == "jpeg":
            for (t, l, ch, cw, s) in [(0, 0, h, w, 224), (10, 37, 120, 200, 224), (5, 3, 40, 30, 224), (0, 0, h, w, 64)]:
                crop = F.resized_crop(img, t, l, ch, cw, [s, s], interpolation=T.InterpolationMode.BILINEAR)
                np.asarray(crop).tofile(os.path.join(oracle, "%s.crop_%d_%d_%d_%d_%d.rgb" % (key, t, l, ch, cw, s)))
                cases.append("%s %d %d crop %d %d %d %d %d" % (key, w, h, t, l, ch, cw, s))
            for (r, c) in [(256, 224), (366, 320), (77, 64)]:
                ev = T.Compose([T.Resize(r), T.CenterCrop(c)])(img)
                np.asarray(ev).tofile(os.path.join(oracle, "%s.eval_%d_%d.rgb" % (key, r, c)))
                cases.append("%s %d %d eval %d %d" % (key, w, h, r, c))
    with open(os.path.join(tree, "train", "n00_cat", "notes.txt"), "w") as f:
        f.write("not an image; the reader must ignore it\n")
    with open(os.path.join(oracle, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    torch.manual_seed(0)
    with open(os.path.join(oracle, "rrc_stats.txt"), "w") as f:
        for (w, h) in [(500, 375), (333, 500), (64, 48)]:
            img = Image.new("RGB", (w, h))
            boxes = np.array([T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(20000)])
            top, left, bh, bw = boxes.mean(axis=0)
            f.write("%d %d %.4f %.4f %.4f %.4f\n" % (w, h, bw, bh, left, top))


if __name__ == "__main__":
    main(sys.argv[1])
