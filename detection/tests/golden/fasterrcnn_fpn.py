"""Golden values for the whole fasterrcnn_resnet50_fpn inference (tests/model_fpn_golden.rs).

torchvision's model with weights=None, weights_backbone=None, 4 object classes and smaller
input sizes (320/480 and 300 proposals, so the test is quick on CPU while the resize still has a fractional
scale), every state-dict tensor overwritten by `value(k, j)` below (k = the tensor's index in
sorted key order, j = the element's flat index), so the Rust test can rebuild the same
160 MB of weights from the key list alone. The class-score weights are scaled up (RoIs of
random weights score almost alike) and the biases of classes 1 and 3 raised, so that about
twenty detections of two classes, with well separated scores, pass the 0.05 threshold.

Writes fasterrcnn_fpn_keys.json (key -> shape, num_batches_tracked included: the import
must drop them) and fasterrcnn_fpn.safetensors (the input image as HWC u8, torchvision's
boxes, labels and scores).

Run: ~/.cache/tricks/torch-2.11.0/venv/bin/python fasterrcnn_fpn.py
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file
from torchvision.models.detection import fasterrcnn_resnet50_fpn

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_CLASSES = 4  # objects; torchvision counts the background too (5)
MIN_SIZE, MAX_SIZE = 320, 480
POST_NMS_TOP_N = 300  # proposals kept per image (torchvision's test default is 1000)
CLASS1_BIAS = 11.0
CLASS3_BIAS = 33.0
CLS_WEIGHT_GAIN = 30.0


def uniform(k, n):
    """n numbers in [0, 1): a Weyl sequence, exact in 64-bit integers and doubles."""
    j = np.arange(n, dtype=np.uint64)
    bits = (j * np.uint64(2654435761) + np.uint64(k) * np.uint64(40503) + np.uint64(12345)) % np.uint64(1 << 32)
    return bits.astype(np.float64) / 4294967296.0


def value(k, name, shape):
    n = int(np.prod(shape)) if shape else 1
    u = uniform(k, n)
    leaf = name.rsplit(".", 1)[1]
    if leaf == "running_var":
        v = 0.5 + u
    elif leaf == "running_mean" or leaf == "bias":
        v = (u - 0.5) * 0.2
    elif len(shape) == 1:  # batch-norm scale
        v = 0.8 + 0.4 * u
    else:  # conv / linear weight: uniform with variance 2 / fan_in
        fan_in = n // shape[0]
        v = (u - 0.5) * 2.0 * math.sqrt(6.0) / math.sqrt(fan_in)
    if name == "roi_heads.box_predictor.cls_score.weight":
        v = v * CLS_WEIGHT_GAIN
    if name == "roi_heads.box_predictor.cls_score.bias":
        v[1] += CLASS1_BIAS
        v[3] += CLASS3_BIAS
    return v.astype(np.float32).reshape(shape)


def image():
    """A 190x290 RGB picture with a few flat rectangles on a gradient (HWC u8)."""
    h, w = 190, 290
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255) // w, (y * 255) // h, ((x + y) * 3) % 256], axis=-1)
    for (y1, x1, y2, x2, c) in [(20, 30, 90, 120, (250, 20, 20)), (100, 150, 170, 270, (20, 220, 60)),
                                (40, 200, 80, 260, (30, 30, 240))]:
        img[y1:y2, x1:x2] = c
    return img.astype(np.uint8)


def main():
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES + 1,
                                    min_size=MIN_SIZE, max_size=MAX_SIZE,
                                    rpn_post_nms_top_n_test=POST_NMS_TOP_N).eval()
    state = model.state_dict()
    keys = sorted(state)
    new_state = {}
    for k, name in enumerate(keys):
        t = state[name]
        if name.endswith("num_batches_tracked"):
            new_state[name] = t
        else:
            new_state[name] = torch.from_numpy(value(k, name, list(t.shape)))
    model.load_state_dict(new_state)
    pixels = image()
    x = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        out = model([x])[0]
    print("detections:", len(out["labels"]), "labels:", out["labels"].tolist())
    print("scores:", out["scores"][:10].tolist())
    with open(os.path.join(HERE, "fasterrcnn_fpn_keys.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps([name, list(state[name].shape)]) for name in keys) + "\n]\n")
    save_file({
        "image": torch.from_numpy(pixels).contiguous(),
        "boxes": out["boxes"].contiguous(),
        "labels": out["labels"].contiguous(),
        "scores": out["scores"].contiguous(),
    }, os.path.join(HERE, "fasterrcnn_fpn.safetensors"))


if __name__ == "__main__":
    main()
