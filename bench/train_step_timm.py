"""The PyTorch peer of `backbone bench`: images per second of a full training step (forward,
cross-entropy, backward, SGD step) of a timm model on random data, timed like ours: warm-up
steps, then `iters` steps between two synchronisations.

    python bench/train_step_timm.py --arch resnet50d --batch 16 --input-size 64 --device cpu --threads 2

`--arch` takes `backbone bench`'s names, so one set of flags serves both sides.
"""
import argparse
import json
import time

import timm
import torch

from precision import add_amp_argument, autocast, check, flush_denormals, grad_scaler, report

# Our architecture names where timm spells them otherwise (the ResNets are spelled alike).
# inception_v3 is timm's name too: timm builds it without the auxiliary classifier and with no
# dropout, as `backbone bench` does.
TIMM_NAMES = {"mobilenet_v1": "mobilenetv1_100", "inception_v3": "inception_v3"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet50d")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    add_amp_argument(p)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    flush_denormals()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    check(a.amp, device)
    torch.backends.cudnn.benchmark = True
    model = timm.create_model(TIMM_NAMES.get(a.arch, a.arch), pretrained=False, num_classes=a.num_classes).to(device).train()
    x = torch.randn(a.batch, 3, a.input_size, a.input_size, device=device)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(a.num_classes, (a.batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = grad_scaler(a.amp)

    def step():
        with autocast(a.amp, device):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    for _ in range(a.warmup):
        step()
    step().item()
    start = time.perf_counter()
    for _ in range(a.iters):
        last = step()
    last.item()
    secs = time.perf_counter() - start
    print(json.dumps({"peer": "pytorch-eager", "arch": a.arch, "batch": a.batch, "input_size": a.input_size,
                      "amp": report(a.amp), "channels_last": a.channels_last, "device": a.device,
                      "threads": torch.get_num_threads(), "images_per_s": a.iters * a.batch / secs,
                      "step_ms": secs * 1000 / a.iters}))


if __name__ == "__main__":
    main()
