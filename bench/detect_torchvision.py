"""The peer of `detect bench`: torchvision's fasterrcnn_resnet50_fpn, timed the same way.

Random images of one size (already at the model's min_size/max_size, so its transform's resize
keeps the size), three boxes each, a training step (the four losses summed, backward, SGD
step) and inference (eval mode, no grad), after warm-up, one sync per timed window.

    python bench/detect_torchvision.py --batch 2 --size 800/1333 --threads 2 --device cpu
"""
import argparse
import json
import time

import torch
import torchvision
from torchvision.models import resnet50
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d

from precision import add_amp_argument, autocast, check, flush_denormals, grad_scaler, report


def arguments(description, size, batch):
    """The flags both detector peers take (bench/detect_c4_torchvision.py imports this)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--num-classes", type=int, default=20)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--size", default=size)
    add_amp_argument(p)
    p.add_argument("--channels-last", action="store_true",
                   help="weights in channels-last memory format (as detect bench --channels-last)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    return p.parse_args()


def bench(a, design, build):
    """Times `build(num_classes, short, long)`'s training step and inference as `detect bench`
    does and prints one JSON object."""
    flush_denormals()
    if a.threads:
        torch.set_num_threads(a.threads)
    short, long = (int(v) for v in a.size.split("/"))
    device = torch.device(a.device)
    check(a.amp, device)
    torch.manual_seed(0)
    model = build(a.num_classes, short, long).to(device)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    images = [torch.rand(3, short, long, device=device) for _ in range(a.batch)]
    w, h = float(long), float(short)
    boxes = torch.tensor(
        [
            [0.1 * w, 0.1 * h, 0.4 * w, 0.5 * h],
            [0.5 * w, 0.2 * h, 0.9 * w, 0.7 * h],
            [0.3 * w, 0.6 * h, 0.6 * w, 0.95 * h],
        ],
        device=device,
    )
    labels = torch.tensor([1, 2, 3], device=device).clamp(max=a.num_classes)
    targets = [{"boxes": boxes, "labels": labels} for _ in range(a.batch)]
    params = [q for q in model.parameters() if q.requires_grad]
    sgd = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4)
    scaler = grad_scaler(a.amp)

    def train_step():
        with autocast(a.amp, device):
            losses = model(images, targets)
        loss = sum(losses.values())
        sgd.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(sgd)
        scaler.update()
        return loss

    def infer():
        with torch.no_grad(), autocast(a.amp, device):
            out = model(images)
        return sum(o["scores"].sum() for o in out)

    def timed(run):
        for _ in range(a.warmup):
            run()
        run().item()
        start = time.perf_counter()
        last = None
        for _ in range(a.iters):
            last = run()
        last.item()
        return time.perf_counter() - start

    model.train()
    train_s = timed(train_step)
    model.eval()
    infer_s = timed(infer)
    n = a.iters * a.batch
    print(
        json.dumps(
            {
                "design": design,
                "arch": "resnet50",
                "batch": a.batch,
                "size": a.size,
                "amp": report(a.amp),
                "channels_last": a.channels_last,
                "device": str(device),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "train_images_per_s": n / train_s,
                "train_step_ms": train_s * 1000 / a.iters,
                "inference_images_per_s": n / infer_s,
                "inference_batch_ms": infer_s * 1000 / a.iters,
            }
        )
    )


def r50_fpn(num_classes, short, long):
    # fasterrcnn_resnet50_fpn as it is fine-tuned from ImageNet weights: frozen batch norm and
    # layer2..layer4 trainable (without weights torchvision would switch to plain BN and
    # train every stage).
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3)
    return FasterRCNN(backbone, num_classes=num_classes + 1, min_size=short, max_size=long)


def main():
    bench(arguments(__doc__, "800/1333", 2), "fpn", r50_fpn)


if __name__ == "__main__":
    main()
