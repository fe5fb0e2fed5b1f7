"""Inference of torchvision's fcn_resnet50 (BN folded into the convs by torch.fx) in three
layouts, interleaved in one process: ordinary strided tensors; the activations in oneDNN's
blocked layout (`Tensor.to_mkldnn()`) with the folded weights as they are; and
`torch.utils.mkldnn.to_mkldnn`, which also keeps oneDNN's reordered weights. Prints images/s.

    python bench/fcn_onednn_probe.py --crop 480 --batch 2 --threads 2
"""
import argparse
import copy
import time

import torch
import torch.nn.functional as F
import torch.utils.mkldnn
from torch.fx.experimental.optimization import fuse
from torchvision.models.segmentation import fcn_resnet50


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crop", type=int, default=480)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = fcn_resnet50(weights=None, weights_backbone=None, num_classes=150, aux_loss=False).eval()
    stages = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    folded = fuse(torch.nn.Sequential(*[getattr(m.backbone, n) for n in stages], m.classifier))
    reordered = torch.utils.mkldnn.to_mkldnn(copy.deepcopy(folded))
    x = torch.randn(a.batch, 3, a.crop, a.crop)

    def up(y):
        return F.interpolate(y, size=(a.crop, a.crop), mode="bilinear", align_corners=False)

    variants = {
        "strided": lambda: up(folded(x)),
        "blocked activations": lambda: up(folded(x.to_mkldnn()).to_dense()),
        "blocked + reordered weights": lambda: up(reordered(x.to_mkldnn()).to_dense()),
    }
    with torch.no_grad():
        reference = variants["strided"]()
        for name, f in variants.items():
            assert torch.equal(f().argmax(1), reference.argmax(1)), name
        for _ in range(a.rounds):
            row = []
            for name, f in variants.items():
                t = time.perf_counter()
                f()
                row.append(f"{name} {a.batch / (time.perf_counter() - t):.3f}")
            print("  ".join(row), flush=True)


if __name__ == "__main__":
    main()
