"""The PyTorch peer of `segment finetune` with configs/segmentation/fashion-scenes-fcn.toml, as
`make demo` and the transfer tables' Fashion profiles run it: the same recipe written as a
plain PyTorch user would, from the same backbone checkpoint, on the same scenes, so that the
mIoU a run of ours reaches can be set beside what PyTorch reaches (their random draws differ:
compare seeds, not single runs).

The model is GluonCV's FCN at output stride 16 (`get_fcn` over `ResNetV1b`, dmlc/gluon-cv
49be0191, gluoncv/model_zoo/{fcn,resnetv1b}.py): a dilated ResNet-18 or 18-D read from the
checkpoint (its `model` metadata names the arch; the fc is dropped), the dilated stage's first
basic block at the previous dilation in conv1 and the stage's in conv2, no pooling in a
dilated stage's D shortcut; heads on C5 and C4 of torchvision's `FCNHead` shape (3x3 conv to
C/4 without bias, BN, ReLU, dropout 0.1, 1x1 conv), logits upsampled bilinearly
(align_corners=False) to the crop.

The recipe: batch 16; each scene flipped with probability 0.5, its longer side resized to an
integer drawn from [int(96 x 0.9), int(96 x 1.2)] (bilinear for the image, nearest for the
labels), a random 64 px crop; ImageNet mean and std; loss = CE(main) + 0.5 CE(aux), pixels
labelled 0 in the PNG ignored; SGD, momentum 0.9, weight decay 1e-4 on every parameter, lr
0.64 x 16 / 256 = 0.04 for the backbone and 10 times that for both heads, poly decay (power
0.9) over every iteration; batch norm in training mode. Validation: the whole 96 px scenes,
pixel accuracy and mIoU over the classes present, intersections and unions summed over the
split (what `segment eval` reports as `mIoU`).

    python bench/fcn_finetune_torch.py --backbone runs/demo/b-standard/backbone/best.safetensors \
        --data runs/demo/data/scenes/ADEChallengeData2016 --epochs 12 --seed 0

Prints one JSON object per validation and a last one with the wall time.
"""
import argparse
import glob
import json
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open

from precision import flush_denormals

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
IGNORE = 255


def conv3x3(c_in, c_out, stride=1, dilation=1):
    return nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, dilation, previous_dilation, downsample):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride, dilation)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out, 1, previous_dilation)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class DilatedResNet18(nn.Module):
    """ResNet-18 (7x7 stem, strided 1x1 shortcut) or 18-D (three 3x3 convs in the stem, average
    pooling before the shortcut's 1x1 conv) with layer4 dilated: output stride 16."""

    def __init__(self, deep_stem, stem_width=32):
        super().__init__()
        if deep_stem:
            self.conv1 = nn.Sequential(
                conv3x3(3, stem_width, 2), nn.BatchNorm2d(stem_width), nn.ReLU(),
                conv3x3(stem_width, stem_width), nn.BatchNorm2d(stem_width), nn.ReLU(),
                conv3x3(stem_width, 64))
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        c_in = 64
        for i, (width, stride, dilation) in enumerate([(64, 1, 1), (128, 2, 1), (256, 2, 1), (512, 1, 2)]):
            downsample = None
            if stride != 1 or c_in != width:
                conv = nn.Conv2d(c_in, width, 1, 1 if deep_stem else stride, bias=False)
                if deep_stem:
                    pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
                    downsample = nn.Sequential(pool, conv, nn.BatchNorm2d(width))
                else:
                    downsample = nn.Sequential(conv, nn.BatchNorm2d(width))
            blocks = [BasicBlock(c_in, width, stride, 1, dilation, downsample),
                      BasicBlock(width, width, 1, dilation, dilation, None)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = width

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c4 = self.layer3(self.layer2(self.layer1(x)))
        return c4, self.layer4(c4)


class FCNHead(nn.Sequential):
    def __init__(self, c_in, classes):
        inner = c_in // 4
        super().__init__(nn.Conv2d(c_in, inner, 3, padding=1, bias=False), nn.BatchNorm2d(inner),
                         nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(inner, classes, 1))
        nn.init.kaiming_normal_(self[0].weight, mode="fan_out", nonlinearity="relu")


class FCN(nn.Module):
    def __init__(self, deep_stem, classes):
        super().__init__()
        self.backbone = DilatedResNet18(deep_stem)
        self.classifier = FCNHead(512, classes)
        self.aux_classifier = FCNHead(256, classes)

    def forward(self, x):
        c4, c5 = self.backbone(x)
        size = x.shape[-2:]
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)
        return up(self.classifier(c5)), up(self.aux_classifier(c4))


def read_backbone(path):
    """The checkpoint's arch (its `model` metadata) and its weights without the fc."""
    with safe_open(path, "pt") as f:
        arch = json.loads(f.metadata()["model"])["arch"]
        weights = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("fc.")}
    return arch, weights


def load_backbone(model, weights, path):
    missing, unexpected = model.backbone.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{path}: missing {missing}, unexpected {unexpected}")


def read_split(root, split):
    images, labels = [], []
    for path in sorted(glob.glob(os.path.join(root, "images", split, "*.jpg"))):
        name = os.path.splitext(os.path.basename(path))[0]
        images.append(Image.open(path).convert("RGB"))
        labels.append(Image.open(os.path.join(root, "annotations", split, name + ".png")))
    return images, labels


def to_targets(label_images):
    # ADE20K's PNG: 0 unlabelled, 1 + the class index otherwise.
    t = torch.from_numpy(np.stack([np.asarray(l, dtype=np.int64) for l in label_images]))
    return torch.where(t == 0, torch.full_like(t, IGNORE), t - 1)


def to_input(rgb_images):
    x = torch.from_numpy(np.stack([np.asarray(i) for i in rgb_images])).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def augment(image, label, rng, base=96, scale=(0.9, 1.2), crop=64):
    if rng.random() < 0.5:
        image, label = image.transpose(Image.FLIP_LEFT_RIGHT), label.transpose(Image.FLIP_LEFT_RIGHT)
    drawn = rng.randint(int(base * scale[0]), int(base * scale[1]))
    w, h = image.size
    size = (drawn, int(h * drawn / w + 0.5)) if w >= h else (int(w * drawn / h + 0.5), drawn)
    image, label = image.resize(size, Image.BILINEAR), label.resize(size, Image.NEAREST)
    x1, y1 = rng.randint(0, size[0] - crop), rng.randint(0, size[1] - crop)
    box = (x1, y1, x1 + crop, y1 + crop)
    return image.crop(box), label.crop(box)


def evaluate(model, images, labels, classes, batch=16):
    model.eval()
    confusion = torch.zeros(classes, classes, dtype=torch.int64)
    with torch.no_grad():
        for i in range(0, len(images), batch):
            pred = model(to_input(images[i:i + batch]))[0].argmax(1)
            truth = to_targets(labels[i:i + batch])
            keep = truth != IGNORE
            confusion += torch.bincount(truth[keep] * classes + pred[keep], minlength=classes * classes).view(classes, classes)
    model.train()
    inter = confusion.diag().double()
    union = confusion.sum(0) + confusion.sum(1) - confusion.diag()
    present = union > 0
    return {"pixAcc": (inter.sum() / confusion.sum()).item(),
            "mIoU": (inter[present] / union[present]).mean().item()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", required=True)
    p.add_argument("--data", required=True, help="the ADEChallengeData2016 folder of `datasets synth`")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--eval-every", type=int, default=6)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr-per-256", type=float, default=0.64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    flush_denormals()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    start = time.time()

    with open(os.path.join(a.data, "classes.txt")) as f:
        classes = len([line for line in f if line.strip()])
    train_images, train_labels = read_split(a.data, "training")
    val_images, val_labels = read_split(a.data, "validation")
    arch, weights = read_backbone(a.backbone)
    if arch not in ("resnet18", "resnet18d"):
        raise SystemExit(f"{a.backbone}: a {arch}; this peer builds ResNet-18 and 18-D")
    model = FCN(arch == "resnet18d", classes)
    load_backbone(model, weights, a.backbone)
    model.train()

    lr = a.lr_per_256 * a.batch / 256
    heads = list(model.classifier.parameters()) + list(model.aux_classifier.parameters())
    optimizer = torch.optim.SGD([{"params": model.backbone.parameters(), "lr": lr, "base": lr},
                                 {"params": heads, "lr": 10 * lr, "base": 10 * lr}],
                                lr=lr, momentum=0.9, weight_decay=1e-4)
    per_epoch = len(train_images) // a.batch
    total = per_epoch * a.epochs
    step = 0
    for epoch in range(a.epochs):
        order = list(range(len(train_images)))
        rng.shuffle(order)
        for b in range(per_epoch):
            pairs = [augment(train_images[i], train_labels[i], rng) for i in order[b * a.batch:(b + 1) * a.batch]]
            x, y = to_input([i for i, _ in pairs]), to_targets([l for _, l in pairs])
            for group in optimizer.param_groups:
                group["lr"] = group["base"] * (1 - step / total) ** 0.9
            out, aux = model(x)
            loss = F.cross_entropy(out, y, ignore_index=IGNORE) + 0.5 * F.cross_entropy(aux, y, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if (epoch + 1) % a.eval_every == 0 or epoch + 1 == a.epochs:
            scores = evaluate(model, val_images, val_labels, classes)
            print(json.dumps({"epoch": epoch + 1, "iter": step, "loss": loss.item(), **scores}), flush=True)
    print(json.dumps({"arch": arch, "seed": a.seed, "seconds": round(time.time() - start, 1)}))


if __name__ == "__main__":
    main()
