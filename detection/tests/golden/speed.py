"""torchvision's CPU timings for the shapes timed by benches/ops_speed.rs (same inputs, same
threads): RoIAlign forward and forward+backward for GluonCV's C4 and torchvision's FPN, and
NMS of 12000 boxes. Prints milliseconds (median of 5 after a warm-up).
Run: ~/.cache/tricks/torch-2.11.0/venv/bin/python speed.py
"""
import time

import torch
from torchvision.ops import MultiScaleRoIAlign, nms, roi_align

torch.manual_seed(0)


def median_ms(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[len(times) // 2]


def random_rois(n, h, w, image_index=0):
    xy = torch.rand(n, 2) * torch.tensor([w, h])
    wh = 16 + torch.rand(n, 2) * torch.tensor([w, h]) / 2
    return torch.cat([torch.full((n, 1), float(image_index)), xy, xy + wh], 1)


print(f"threads {torch.get_num_threads()}")
# C4: 512 RoIs, 1024 channels, 38 x 63 stride-16 map of a 600 x 1000 image, 14 x 14, sr 2.
feature = torch.randn(1, 1024, 38, 63)
rois = random_rois(512, 600, 1000)
print("c4 forward", median_ms(lambda: roi_align(feature, rois, (14, 14), 1 / 16, 2, False)))
x = feature.clone().requires_grad_(True)
g = torch.randn(512, 1024, 14, 14)  # a dense upstream gradient, as in training
print("c4 forward+backward", median_ms(lambda: roi_align(x, rois, (14, 14), 1 / 16, 2, False).backward(g)))

# FPN: 512 RoIs over P2..P5 (256 channels) of an 800 x 1216 padded image, 7 x 7, sr 2.
levels = {f"p{k}": torch.randn(1, 256, 800 // 2**k, 1216 // 2**k) for k in range(2, 6)}
boxes = [random_rois(512, 800, 1216)[:, 1:]]
pooler = MultiScaleRoIAlign(list(levels), 7, 2)
print("fpn forward", median_ms(lambda: pooler(levels, boxes, [(800, 1216)])))
lv = {k: v.clone().requires_grad_(True) for k, v in levels.items()}
g = torch.randn(512, 256, 7, 7)
print("fpn forward+backward", median_ms(lambda: pooler(lv, boxes, [(800, 1216)]).backward(g)))

b = random_rois(12000, 800, 1216)[:, 1:]
s = torch.rand(12000)
print("nms 12000 @0.7", median_ms(lambda: nms(b, s, 0.7)), "kept", len(nms(b, s, 0.7)))
