"""The PyTorch peer of `segment bench`: images per second of an FCN training step (forward with
the auxiliary head, cross-entropy on both outputs with the aux one weighted 0.5, backward, SGD
step) and of inference (the main head only, no grad) with torchvision's fcn_resnet50 on random
data, timed like ours: warm-up steps, then `iters` steps between two synchronisations.

    python bench/fcn_torchvision.py --batch 2 --crop 480 --device cpu --threads 2
"""
import argparse
import json
import time

import torch
from torchvision.models.segmentation import fcn_resnet50, fcn_resnet101

from precision import add_amp_argument, autocast, check, flush_denormals, grad_scaler, report


def timed(warmup, iters, f):
    for _ in range(warmup):
        f()
    f().sum().item()
    start = time.perf_counter()
    for _ in range(iters):
        last = f()
    last.sum().item()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet50", choices=["resnet50", "resnet101"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--crop", type=int, default=480)
    p.add_argument("--num-classes", type=int, default=150)
    p.add_argument("--device", default="cpu")
    add_amp_argument(p)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    flush_denormals()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    check(a.amp, device)
    torch.backends.cudnn.benchmark = True
    build = fcn_resnet50 if a.arch == "resnet50" else fcn_resnet101
    model = build(weights=None, weights_backbone=None, num_classes=a.num_classes, aux_loss=True).to(device)
    x = torch.randn(a.batch, 3, a.crop, a.crop, device=device)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(a.num_classes, (a.batch, a.crop, a.crop), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = grad_scaler(a.amp)
    ce = torch.nn.CrossEntropyLoss(ignore_index=255)

    def train_step():
        with autocast(a.amp, device):
            out = model(x)
            loss = ce(out["out"].float(), y) + 0.5 * ce(out["aux"].float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    model.train()
    train_secs = timed(a.warmup, a.iters, train_step)

    # Inference needs the main head only (the aux head is a training loss); ours skips it too.
    model.eval()
    model.aux_classifier = None

    def infer():
        with torch.no_grad(), autocast(a.amp, device):
            return model(x)["out"]

    infer_secs = timed(a.warmup, a.iters, infer)
    images = a.iters * a.batch
    print(json.dumps({"peer": "torchvision", "arch": a.arch, "batch": a.batch, "crop": a.crop,
                      "num_classes": a.num_classes, "amp": report(a.amp), "channels_last": a.channels_last,
                      "device": a.device, "threads": torch.get_num_threads(),
                      "train_images_per_s": images / train_secs, "infer_images_per_s": images / infer_secs}))


if __name__ == "__main__":
    main()
