"""Golden anchors for detection::ops::anchors.

torchvision: AnchorGenerator of fasterrcnn_resnet50_fpn (sizes 32..512, ratios 0.5, 1, 2) on a
padded batch of 96 x 128 with feature maps of strides 4..64 (one with an odd size).
GluonCV: RPNAnchorGenerator (stride 16, base 16, scales 2..32, ratios 0.5, 1, 2) written out in
numpy from its source (py-faster-rcnn's generate_anchors), since MXNet is not installed here.
Run: ~/.cache/tricks/torch-2.11.0/venv/bin/python anchors.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

out = {}
sizes = ((32,), (64,), (128,), (256,), (512,))
ratios = ((0.5, 1.0, 2.0),) * len(sizes)
gen = AnchorGenerator(sizes, ratios)
image = torch.zeros(1, 3, 96, 128)
feature_sizes = [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]
features = [torch.zeros(1, 4, h, w) for h, w in feature_sizes]
anchors = gen(ImageList(image, [(90, 120)]), features)[0]
start = 0
for level, (h, w) in enumerate(feature_sizes):
    n = h * w * 3
    out[f"fpn_level{level}"] = anchors[start:start + n]
    start += n
out["fpn_feature_sizes"] = torch.tensor(feature_sizes, dtype=torch.int64)


def whctrs(a):
    w = a[2] - a[0] + 1
    h = a[3] - a[1] + 1
    return w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)


def mkanchors(ws, hs, x, y):
    ws = ws[:, None]
    hs = hs[:, None]
    return np.hstack((x - 0.5 * (ws - 1), y - 0.5 * (hs - 1), x + 0.5 * (ws - 1), y + 0.5 * (hs - 1)))


def gluon_base_anchors(stride, base_size, scales, ratios):
    anchor = np.array([1, 1, stride, stride], dtype=np.float64) - 1
    w, h, x, y = whctrs(anchor)
    ws = np.round(np.sqrt(w * h / np.array(ratios)))
    hs = np.round(ws * np.array(ratios))
    per_ratio = mkanchors(ws, hs, x, y)
    sizes = np.array([s * base_size for s in scales], dtype=np.float64) / stride
    rows = []
    for a in per_ratio:
        w, h, x, y = whctrs(a)
        rows.append(mkanchors(w * sizes, h * sizes, x, y))
    return np.vstack(rows)


base = gluon_base_anchors(16, 16, (2, 4, 8, 16, 32), (0.5, 1, 2))
height, width = 5, 7  # feature map of a 80 x 112 image at stride 16
ox, oy = np.meshgrid(np.arange(0, width * 16, 16), np.arange(0, height * 16, 16))
offsets = np.stack((ox.ravel(), oy.ravel(), ox.ravel(), oy.ravel()), axis=1)
c4 = (base.reshape(1, -1, 4) + offsets.reshape(-1, 1, 4)).reshape(-1, 4).astype(np.float32)
out["c4"] = torch.from_numpy(c4)
x1, y1, x2, y2 = np.split(c4, 4, axis=1)
invalid = (x1 < 0) + (y1 < 0) + (x2 >= 112) + (y2 >= 80)
out["c4_inside_80x112"] = torch.from_numpy(~invalid.ravel())

save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(os.path.dirname(__file__), "anchors.safetensors"))
