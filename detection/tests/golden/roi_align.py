"""Golden RoIAlign (forward and gradient wrt the input) for detection::ops::roi_align, and
MultiScaleRoIAlign for detection::ops::poolers, from torchvision 0.26 on the CPU.

RoIs include ones partly and wholly outside the map, tiny ones (< 1 pixel), and RoIs of two
images in mixed order. The gradient is that of sum(output * weight) for a random weight.
Run: ~/.cache/tricks/torch-2.11.0/venv/bin/python roi_align.py
"""
import os
from collections import OrderedDict

import torch
from safetensors.torch import save_file
from torchvision.ops import MultiScaleRoIAlign, roi_align

g = torch.Generator().manual_seed(11)
out = {}
feature = torch.randn(2, 3, 10, 12, generator=g)
rois = torch.tensor([
    [0, 4.0, 4.0, 40.0, 30.0],
    [1, -10.0, -6.0, 20.0, 16.0],     # partly outside (top left)
    [0, 30.0, 20.0, 60.0, 50.0],      # partly outside (bottom right)
    [1, 8.3, 9.1, 9.0, 9.5],          # smaller than one feature pixel
    [0, 70.0, 60.0, 90.0, 80.0],      # wholly outside
    [1, 0.0, 0.0, 48.0, 40.0],        # the whole map
    [0, 13.7, 2.2, 35.1, 11.9],
    [1, 23.0, 19.0, 23.0, 19.0],      # zero size
])
out["feature"] = feature
out["rois"] = rois
cases = []
for aligned in (False, True):
    for sampling_ratio in (2, 0, 3):
        for output_size, scale in (((3, 4), 0.25), ((7, 7), 0.5)):
            x = feature.clone().requires_grad_(True)
            y = roi_align(x, rois, output_size, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=aligned)
            w = torch.randn(y.shape, generator=g)
            (y * w).sum().backward()
            name = f"a{int(aligned)}_s{sampling_ratio}_{output_size[0]}x{output_size[1]}"
            out[f"{name}_out"] = y.detach()
            out[f"{name}_weight"] = w
            out[f"{name}_grad"] = x.grad
            cases.append([int(aligned), sampling_ratio, output_size[0], output_size[1], int(scale * 100)])
out["cases"] = torch.tensor(cases, dtype=torch.int64)

# MultiScaleRoIAlign over P2..P5 of a 2-image batch (images 60x80 and 64x72, padded to 64x96).
pooler = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], output_size=(7, 7), sampling_ratio=2)
levels = OrderedDict((f"p{k}", torch.randn(2, 2, 64 // 2**k, 96 // 2**k, generator=g).requires_grad_(True)) for k in range(2, 6))
boxes = [
    torch.tensor([[1.0, 2.0, 20.0, 30.0], [0.0, 0.0, 79.0, 59.0], [10.0, 5.0, 12.0, 9.0], [3.0, 3.0, 60.0, 25.0]]),
    torch.tensor([[5.0, 6.0, 70.0, 62.0], [30.0, 30.0, 40.0, 33.0], [0.0, 0.0, 71.0, 63.0], [0.0, 0.0, 120.0, 120.0]]),
]
# Scale the boxes up so that several levels are used (the canonical 224 box maps to level 4).
boxes = [b * 4 for b in boxes]
image_sizes = [(60, 80), (64, 72)]
pooled = pooler(levels, boxes, image_sizes)
w = torch.randn(pooled.shape, generator=g)
(pooled * w).sum().backward()
for k, v in levels.items():
    out[f"pool_{k}"] = v.detach()
    out[f"pool_{k}_grad"] = v.grad
out["pool_boxes0"] = boxes[0]
out["pool_boxes1"] = boxes[1]
out["pool_out"] = pooled.detach()
out["pool_weight"] = w

save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(os.path.dirname(__file__), "roi_align.safetensors"))
