"""Golden NMS for detection::ops::nms from torchvision.ops.nms / batched_nms (CPU).

Cases: clustered boxes with tied scores (tie order), several thresholds, an empty input,
zero-area boxes, and batched NMS on both of torchvision's code paths (coordinate offset trick
up to 1000 boxes, per-category loop above).
Run: ~/.cache/tricks/torch-2.11.0/venv/bin/python nms.py
"""
import os

import torch
from safetensors.torch import save_file
from torchvision.ops import batched_nms, nms

g = torch.Generator().manual_seed(7)


def clustered(n, clusters, size=200.0):
    centres = torch.rand(clusters, 2, generator=g) * size
    which = torch.randint(0, clusters, (n,), generator=g)
    c = centres[which] + torch.randn(n, 2, generator=g) * 4
    wh = 10 + torch.rand(n, 2, generator=g) * 30
    return torch.cat([c - wh / 2, c + wh / 2], 1)


out = {}
boxes = clustered(300, 20)
scores = torch.rand(300, generator=g)
scores[::7] = 0.5  # many exact ties
boxes[5] = boxes[6]  # identical boxes, tied scores below
scores[5] = scores[6] = 0.75
boxes[10] = torch.tensor([50.0, 50.0, 50.0, 60.0])  # zero area
out["boxes"] = boxes
out["scores"] = scores
for t in (0.3, 0.5, 0.7):
    out[f"keep_{int(t * 10)}"] = nms(boxes, scores, t)

idxs = torch.randint(0, 5, (300,), generator=g)
out["idxs"] = idxs
out["batched_keep_5"] = batched_nms(boxes, scores, idxs, 0.5)  # 300 boxes: offset trick

big = clustered(1500, 60, 600.0)
big_scores = torch.rand(1500, generator=g)
big_idxs = torch.randint(0, 20, (1500,), generator=g)
out["big_boxes"] = big
out["big_scores"] = big_scores
out["big_idxs"] = big_idxs
out["big_batched_keep_5"] = batched_nms(big, big_scores, big_idxs, 0.5)  # > 1000 boxes: per category
out["big_keep_7"] = nms(big, big_scores, 0.7)

save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(os.path.dirname(__file__), "nms.safetensors"))
