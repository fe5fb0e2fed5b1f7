"""The PyTorch peer of the whole `fashion-quick` job (configs/backbone/fashion-quick.toml):
train a timm ResNet-18-D on Fashion-MNIST for 2 epochs, evaluating on the test split after
each epoch, then evaluate the best weights once more (what `backbone eval` does after
`backbone train`). Written as a plain PyTorch user would write it at its fastest on a CPU:
the whole dataset held in memory as one uint8 tensor, flips done on the batch, no DataLoader.

Same recipe as ours: batch 128 (the last partial batch dropped), SGD with Nesterov momentum
0.9, lr 0.4 x 128 / 256 = 0.2, weight decay 5e-4 on conv/fc weights only (no bias decay),
linear warmup from 0 over a quarter epoch then cosine to 0, updated every iteration; label
smoothing 0.1 (PyTorch's uniform style); zero-gamma (timm's zero_init_last); ImageNet mean/std;
channels-last; 2 threads.

    python bench/fashion_quick_torch.py --data /usr/share/datasets/fashion-mnist --threads 2

Prints one JSON object: the test top-1 of the final evaluation and the wall time of each part.
"""
import argparse
import copy
import gzip
import json
import math
import os
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F

from precision import flush_denormals


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy())


def load(root, prefix):
    images = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz")).long()
    return images, labels


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_input(grey_u8):
    # Grey replicated to RGB (as PIL's convert("RGB")), normalised, channels-last.
    x = grey_u8.unsqueeze(1).float().div_(255.0).expand(-1, 3, -1, -1)
    return ((x - MEAN) / STD).contiguous(memory_format=torch.channels_last)


def arguments(batch):
    """The flags both Fashion-MNIST peers take."""
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--seed", type=int, default=0)
    return p


def set_up(a):
    """Denormals flushed as our commands flush them, threads and seed from the flags, then the
    train and test splits as uint8 tensors."""
    flush_denormals()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    return load(a.data, "train") + load(a.data, "t10k")


def warmup_cosine(lr, warmup, total):
    """The rate at each step: linear from 0 over `warmup` steps, then cosine to 0 at `total`."""
    def lr_at(it):
        if it < warmup:
            return lr * it / warmup
        return lr * (1 + math.cos(math.pi * (it - warmup) / (total - warmup))) / 2
    return lr_at


def flipped(images_u8):
    """Each image mirrored left-right with probability 0.5, done on the batch."""
    flip = torch.rand(len(images_u8)) < 0.5
    return torch.where(flip.view(-1, 1, 1), images_u8.flip(-1), images_u8)


@torch.no_grad()
def evaluate(model, images, labels, batch, prepare=to_input):
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        logits = model(prepare(images[i : i + batch]))
        correct += (logits.argmax(1) == labels[i : i + batch]).sum().item()
    return correct / len(images)


def main():
    p = arguments(batch=128)
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    start = time.perf_counter()
    train_x, train_y, test_x, test_y = set_up(a)
    model = timm.create_model("resnet18d", num_classes=10, zero_init_last=True)
    model = model.to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    lr = 0.4 * a.batch / 256
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = len(train_x) // a.batch
    total = a.epochs * steps_per_epoch
    warmup = round(0.25 * steps_per_epoch)

    lr_at = warmup_cosine(lr, warmup, total)

    setup_s = time.perf_counter() - start
    best, best_state, it = -1.0, None, 0
    train_s = eval_s = 0.0
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x))
        for b in range(steps_per_epoch):
            idx = order[b * a.batch : (b + 1) * a.batch]
            x = flipped(train_x[idx])
            for g in opt.param_groups:
                g["lr"] = lr_at(it)
            loss = F.cross_entropy(model(to_input(x)), train_y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
        train_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        top1 = evaluate(model, test_x, test_y, a.batch)
        eval_s += time.perf_counter() - t0
        if top1 > best:
            best, best_state = top1, copy.deepcopy(model.state_dict())
    t0 = time.perf_counter()
    model.load_state_dict(best_state)
    final = evaluate(model, test_x, test_y, a.batch)
    eval_s += time.perf_counter() - t0
    print(json.dumps({
        "top1": final, "setup_s": setup_s, "train_s": train_s, "eval_s": eval_s,
        "wall_s": time.perf_counter() - start,
    }))


if __name__ == "__main__":
    main()
