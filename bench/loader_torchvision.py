"""torchvision's PIL training pipeline, timed the way `datasets::bench::loader_throughput` times ours.

    python bench/loader_torchvision.py --data DIR [--workers N] [--batch N] [--size PX]
                                       [--batches N] [--warmup N]

DIR is an ImageNet-layout folder (DIR/train/<class>/*.jpg). The pipeline is ImageFolder +
RandomResizedCrop(size) + RandomHorizontalFlip + ColorJitter(0.4, 0.4, 0.4) + ToTensor +
Normalize, shuffled, in a DataLoader with the given workers and batch size. Warm-up batches are
taken before the clock starts; then `--batches` batches are timed. Prints one JSON object.

Ours differs in two ways that favour torchvision slightly: it also draws PCA lighting (three
numbers per image), and it leaves normalisation and the float conversion to the GPU, where
torchvision's ToTensor + Normalize run on the CPU workers.
"""

import argparse
import json
import time

import torch
from torchvision import datasets, transforms


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    transform = transforms.Compose([
        transforms.RandomResizedCrop(args.size),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(0.4, 0.4, 0.4),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    dataset = datasets.ImageFolder(f"{args.data}/train", transform)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )

    wanted = args.warmup + args.batches
    taken = images = 0
    started = None
    seconds = 0.0
    while taken < wanted:
        for batch, _labels in loader:
            taken += 1
            if taken == args.warmup:
                started = time.perf_counter()
            elif taken > args.warmup:
                images += batch.shape[0]
            if taken == wanted:
                seconds = time.perf_counter() - started
                break
    per_s = images / seconds
    print(json.dumps({
        "images": images,
        "seconds": seconds,
        "images_per_s": per_s,
        "images_per_s_per_worker": per_s / max(args.workers, 1),
        "workers": args.workers,
        "batch_size": args.batch,
        "input_size": args.size,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
