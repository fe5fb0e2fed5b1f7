"""Golden values for detection::ops::{boxes, box_coder, losses} from torchvision 0.26 / torch 2.11.

GluonCV's decoder (NormalizedBoxCenterDecoder with convert_anchor, stds, clip after exp) is
written out here in torch from its formulas, since MXNet is not installed.
Run: ~/.cache/tricks/torch-2.11.0/venv/bin/python boxes_and_coder.py (writes boxes_and_coder.safetensors).
"""
import math
import os

import torch
from safetensors.torch import save_file
from torchvision.ops import box_area, box_iou, clip_boxes_to_image, remove_small_boxes
from torchvision.models.detection._utils import BoxCoder

g = torch.Generator().manual_seed(10)


def random_boxes(n, size=100.0):
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2
    return torch.cat([xy, xy + wh], 1)


a = random_boxes(7)
b = random_boxes(5)
b[0] = a[2]  # an exact duplicate: IoU 1
b[1] = torch.tensor([200.0, 200.0, 210.0, 220.0])  # disjoint from everything: IoU 0
small = torch.tensor([[0, 0, 5, 5], [0, 0, 0.5, 9], [1, 1, 3, 1.5], [2, 2, 12, 12]], dtype=torch.float32)
outside = torch.tensor([[-5, -3, 40, 80], [10, 20, 300, 30], [-9, -9, -1, -2]], dtype=torch.float32)

out = {
    "a": a, "b": b,
    "area_a": box_area(a),
    "iou_ab": box_iou(a, b),
    "outside": outside,
    "clipped": clip_boxes_to_image(outside, (50, 60)),
    "small": small,
    "keep_small_2": remove_small_boxes(small, 2.0),
}

# torchvision box coder: RPN (1,1,1,1) and box head (10,10,5,5).
proposals = random_boxes(6)
gt = random_boxes(6)
for name, weights in [("rpn", (1.0, 1.0, 1.0, 1.0)), ("head", (10.0, 10.0, 5.0, 5.0))]:
    coder = BoxCoder(weights)
    out[f"encode_{name}"] = coder.encode_single(gt, proposals)
    deltas = torch.randn(6, 12, generator=g)
    deltas[0, 2] = 9.0  # beyond the clamp ln(1000/16) for weight 1
    deltas[1, 3] = 30.0  # beyond the clamp for weight 5
    out[f"deltas_{name}"] = deltas
    out[f"decode_{name}"] = coder.decode(deltas, [proposals])
out["proposals"] = proposals
out["gt"] = gt

# GluonCV's C4 box decoder: stds (0.1, 0.1, 0.2, 0.2), scale clipped after exp.
def gluon_decode(x, anchors, stds, clip):
    aw = anchors[:, 2] - anchors[:, 0]
    ah = anchors[:, 3] - anchors[:, 1]
    ax = anchors[:, 0] + aw / 2
    ay = anchors[:, 1] + ah / 2
    p = x.view(x.shape[0], -1, 4)
    ox = p[..., 0] * stds[0] * aw[:, None] + ax[:, None]
    oy = p[..., 1] * stds[1] * ah[:, None] + ay[:, None]
    tw = torch.exp(p[..., 2] * stds[2])
    th = torch.exp(p[..., 3] * stds[3])
    if clip is not None:
        tw = torch.minimum(tw, torch.tensor(clip))
        th = torch.minimum(th, torch.tensor(clip))
    ow = tw * aw[:, None] / 2
    oh = th * ah[:, None] / 2
    return torch.stack([ox - ow, oy - oh, ox + ow, oy + oh], -1)


def gluon_encode(gt, anchors, stds):
    def centre(bx):
        w = bx[:, 2] - bx[:, 0]
        h = bx[:, 3] - bx[:, 1]
        return bx[:, 0] + w / 2, bx[:, 1] + h / 2, w, h
    gx, gy, gw, gh = centre(gt)
    ax, ay, aw, ah = centre(anchors)
    return torch.stack([(gx - ax) / aw / stds[0], (gy - ay) / ah / stds[1],
                        torch.log(gw / aw) / stds[2], torch.log(gh / ah) / stds[3]], 1)


stds = (0.1, 0.1, 0.2, 0.2)
gdeltas = torch.randn(6, 8, generator=g) * 2
gdeltas[0, 2] = 9.0
out["gluon_deltas"] = gdeltas
out["gluon_decode_noclip"] = gluon_decode(gdeltas, proposals, stds, None)
out["gluon_decode_clip"] = gluon_decode(gdeltas, proposals, stds, 4.14)
out["gluon_encode"] = gluon_encode(gt, proposals, stds)

# Smooth L1 (sum) at beta 1/9 and 1, and beta 0 (plain L1).
li = torch.randn(20, generator=g)
lt = torch.randn(20, generator=g)
out["l1_input"] = li
out["l1_target"] = lt
for name, beta in [("ninth", 1.0 / 9), ("one", 1.0), ("zero", 0.0)]:
    out[f"smooth_l1_{name}"] = torch.nn.functional.smooth_l1_loss(li, lt, beta=beta, reduction="sum").reshape(1)

save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(os.path.dirname(__file__), "boxes_and_coder.safetensors"))
