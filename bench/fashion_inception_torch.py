"""The PyTorch peer of configs/backbone/fashion-inception_v3.toml: timm's Inception-V3 trained
on Fashion-MNIST upscaled to 75 px, to tell whether its low top-1 there is the network's or
this toolkit's.

Same recipe as ours: timm `inception_v3` without the auxiliary classifier and without dropout,
GluonCV's initialisation (MXNet's `MSRAPrelu`: every conv and fc weight normal with std
sqrt(2 / (1 + 0.25^2) / ((fan_in + fan_out) / 2)), biases zero), SGD with Nesterov momentum
0.9 at 0.4 per 256 images with the fc at a tenth of it, weight decay 4e-5 on conv/fc weights
only, linear warmup over a tenth of an epoch then cosine to 0, label smoothing 0.1, flips,
channels-last; the 28 px images upscaled bilinearly to 75 px, ImageNet mean/std. One epoch over
the first `--max-train` images of a seeded permutation, then the test top-1 (the 10,000 test
images at 75 px).

    python bench/fashion_inception_torch.py --data /usr/share/datasets/fashion-mnist \
        --batch 64 --max-train 30000 --threads 2

Prints one JSON object: the test top-1 and the wall time of each part.
"""
import json
import math
import time

import timm
import torch
import torch.nn.functional as F

from fashion_quick_torch import MEAN, STD, arguments, evaluate, flipped, set_up, warmup_cosine

SIZE = 75


def to_input(grey_u8):
    x = grey_u8.unsqueeze(1).float().div_(255.0)
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    x = (x.expand(-1, 3, -1, -1) - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last)


def msra_prelu_(model):
    magnitude = 2.0 / (1.0 + 0.25**2)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            # MXNet's fans: c_in * kh * kw and c_out * kh * kw (kh * kw = 1 for the fc).
            fan_in = m.weight[0].numel()
            fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
            std = math.sqrt(magnitude / ((fan_in + fan_out) / 2))
            torch.nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)


def main():
    p = arguments(batch=64)
    p.add_argument("--max-train", type=int, default=60000)
    a = p.parse_args()
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = set_up(a)
    keep = torch.randperm(len(train_x))[: a.max_train]
    train_x, train_y = train_x[keep], train_y[keep]

    model = timm.create_model("inception_v3", num_classes=10, drop_rate=0.0)
    msra_prelu_(model)
    model = model.to(memory_format=torch.channels_last)
    lr = 0.4 * a.batch / 256
    # (weight decay, rate multiplier) -> parameters: no bias decay, the fc at a tenth.
    groups = {}
    for name, param in model.named_parameters():
        decay = 0.0 if param.ndim <= 1 else 4e-5
        mult = 0.1 if name.startswith("fc.") else 1.0
        groups.setdefault((decay, mult), []).append(param)
    opt = torch.optim.SGD(
        [{"params": ps, "weight_decay": decay, "mult": mult} for (decay, mult), ps in groups.items()],
        lr=lr, momentum=0.9, nesterov=True,
    )
    steps = len(train_x) // a.batch
    lr_at = warmup_cosine(lr, round(0.1 * steps), steps)

    setup_s = time.perf_counter() - start
    t0 = time.perf_counter()
    model.train()
    order = torch.randperm(len(train_x))
    for it in range(steps):
        idx = order[it * a.batch : (it + 1) * a.batch]
        x = flipped(train_x[idx])
        for g in opt.param_groups:
            g["lr"] = lr_at(it) * g["mult"]
        loss = F.cross_entropy(model(to_input(x)), train_y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (it + 1) % 50 == 0:
            print(f"step {it + 1}/{steps}: loss {loss.item():.4f}", flush=True)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    top1 = evaluate(model, test_x, test_y, 256, prepare=to_input)
    print(json.dumps({
        "top1": top1, "images": len(train_x), "batch": a.batch, "setup_s": setup_s,
        "train_s": train_s, "eval_s": time.perf_counter() - t0, "wall_s": time.perf_counter() - start,
    }))


if __name__ == "__main__":
    main()
