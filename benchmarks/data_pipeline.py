"""torchvision + PIL doing what benchmarks/data_pipeline.rs does, on the same files: the standard training
transforms in a DataLoader (num_workers = threads; 0 threads = the main process only), batched tensors out.

usage: data_pipeline.py --kind cifar|folder --root DIR [--threads N] [--batch-size 128] [--epochs 1]
       data_pipeline.py --make DIR   (writes DIR/cifar-10-batches-py and DIR/folder/{train,val}/<class>/*.JPEG)
"""
import argparse
import os
import pickle
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
import torchvision.transforms as T
from torchvision.datasets import ImageFolder


class CifarBatches(Dataset):
    """torchvision.datasets.CIFAR10's __getitem__ (Image.fromarray, then the transform), without its md5 check."""

    def __init__(self, root, transform):
        images, labels = [], []
        for i in range(1, 6):
            with open(os.path.join(root, "data_batch_%d" % i), "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            images.append(entry["data"])
            labels.extend(entry["labels"])
        self.data = np.vstack(images).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        self.targets = labels
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def make(out, folder_images=512, classes=8):
    """CIFAR-10 Python batches of random pixels (content does not matter to crop and flip) and 500x375
    photo-like JPEGs (smooth colour fields, edges and noise, quality 90: about 90 KB, near ImageNet's file sizes)."""
    rng = np.random.default_rng(0)
    cifar = os.path.join(out, "cifar-10-batches-py")
    os.makedirs(cifar, exist_ok=True)
    for name in ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]:
        entry = {"batch_label": name, "data": rng.integers(0, 256, size=(2000, 3072), dtype=np.uint8),
                 "labels": [int(x) for x in rng.integers(0, 10, size=2000)], "filenames": ["x.png"] * 2000}
        with open(os.path.join(cifar, name), "wb") as f:
            pickle.dump(entry, f, protocol=2)
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    for split, count in (("train", folder_images), ("val", classes)):
        for i in range(count):
            folder = os.path.join(out, "folder", split, "class%02d" % (i % classes))
            os.makedirs(folder, exist_ok=True)
            f1, f2, phase = rng.uniform(5, 40), rng.uniform(5, 40), rng.uniform(0, 6.3)
            base = np.stack([128 + 90 * np.sin(x / f1 + c + phase) * np.cos(y / f2 - c) for c in range(3)], axis=-1)
            base[(x - rng.uniform(0, 500)) ** 2 + (y - rng.uniform(0, 375)) ** 2 < rng.uniform(30, 120) ** 2] *= 0.5
            pixels = np.clip(base + rng.normal(0, 16, size=base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, "img%04d.JPEG" % i), "JPEG", quality=90)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--make")
    p.add_argument("--kind", choices=["cifar", "folder"])
    p.add_argument("--root")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    if args.make:
        make(args.make)
        return
    torch.set_num_threads(1)
    if args.kind == "cifar":
        transform = T.Compose([
            T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
            T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ])
        data = CifarBatches(args.root, transform)
    else:
        transform = T.Compose([
            T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ])
        data = ImageFolder(os.path.join(args.root, "train"), transform)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.threads)
    seen = 0
    start, cpu_start = time.perf_counter(), os.times()
    for _ in range(args.epochs):
        for images, labels in loader:
            seen += len(labels)
    # Whole epochs: the worker processes have exited and been waited for, so their CPU time is in os.times().
    seconds, cpu_end = time.perf_counter() - start, os.times()
    cpu = sum(cpu_end[:4]) - sum(cpu_start[:4])
    print("torchvision %.1f images/s, %.1f images per CPU-second (%d images, %.2f s wall, %.2f s CPU, %d threads)"
          % (seen / seconds, seen / cpu, seen, seconds, cpu, args.threads))


if __name__ == "__main__":
    main()
