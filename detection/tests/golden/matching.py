"""Golden matcher results for detection::ops::matcher from torchvision's Matcher, and
sampler counts from torchvision's BalancedPositiveNegativeSampler.

IoUs are quantised to tenths so that ties (equal best IoUs of a ground truth, including the
all-zero case) and values exactly on the thresholds occur.
Run: ~/.cache/tricks/torch-2.11.0/venv/bin/python matching.py
"""
import os

import torch
from safetensors.torch import save_file
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, Matcher

g = torch.Generator().manual_seed(3)
out = {}
iou = (torch.rand(4, 40, generator=g) * 10).floor() / 10 * 0.9
iou[3] = 0.0  # a ground truth overlapping nothing: every prediction ties as its best
iou[2, 5] = 0.7  # exactly the high threshold
iou[1, 6] = 0.3  # exactly the low threshold
iou[:, 7] = torch.tensor([0.2, 0.2, 0.1, 0.0])  # a tie between ground truths
out["iou"] = iou
for name, (high, low, allow) in {
    "rpn": (0.7, 0.3, True),
    "rpn_strict": (0.7, 0.3, False),
    "head": (0.5, 0.5, False),
}.items():
    out[f"match_{name}"] = Matcher(high, low, allow)(iou.clone())

iou_one = (torch.rand(2, 30, generator=g) * 10).floor() / 10 * 0.6
out["iou_one"] = iou_one
out["match_one_rpn"] = Matcher(0.7, 0.3, True)(iou_one.clone())

# Sampler counts: labels 1 / 0 / -1 (torchvision samples from `matched_idxs >= 1` and `== 0`).
labels = torch.full((500,), -1, dtype=torch.int64)
labels[:40] = 1
labels[40:300] = 0
counts = []
for per_image, fraction, n_pos in [(256, 0.5, 40), (256, 0.5, 200), (128, 0.25, 10), (512, 0.25, 0)]:
    l = torch.full((600,), -1, dtype=torch.int64)
    l[:n_pos] = 1
    l[n_pos:n_pos + 300] = 0
    pos, neg = BalancedPositiveNegativeSampler(per_image, fraction)([l])
    counts.append([per_image, int(fraction * 100), n_pos, int(pos[0].sum()), int(neg[0].sum())])
out["sampler_counts"] = torch.tensor(counts, dtype=torch.int64)

save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(os.path.dirname(__file__), "matching.safetensors"))
print(out["sampler_counts"])
print(out["match_rpn"], out["match_rpn_strict"])
