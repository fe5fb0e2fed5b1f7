"""Golden values for detection/tests/eval_voc_golden.rs, and a Python peer for the speed claim.

    python voc_eval_golden.py            # writes voc_random.json beside this file
    python voc_eval_golden.py --bench    # times GluonCV's algorithm at VOC07-test scale

`devkit_ap` follows the VOC devkit's VOCevaldet.m loop as its rules read (numpy only, no
GluonCV or devkit code): per class, detections of all images sorted by score, highest first,
equal scores in input order (MATLAB's sort is stable); each matched to the ground-truth box
of its image and class with the highest inclusive-pixel IoU (the first on a tie); IoU >= the
threshold and not taken -> TP, taken -> FP, below -> FP, a difficult box -> neither.
Difficult boxes are not positives; a class without positives has no AP (null).
VOC07: 11-point AP at the thresholds MATLAB's 0:0.1:1 produces; VOC12: area under the
precision envelope (VOCap.m).

The fixture stores coordinates in quarter pixels and scores in thousandths, as integers, so
Rust and Python start from bit-identical doubles (x = q / 4.0, score = s / 1000.0).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np


def matlab_colon_thresholds():
    # MATLAB fills the first half of 0:0.1:1 as 0 + k*0.1 and the second as 1 - (10-k)*0.1.
    return [k * 0.1 if k <= 5 else 1.0 - (10 - k) * 0.1 for k in range(11)]


def devkit_ap(images, detections, n_classes, iou_thr):
    """images: list of lists of (box, class, difficult); detections: list of
    (image, class, score, box) in input order. Returns (ap07, ap12) per class (None = no AP)."""
    ap07, ap12 = [], []
    for c in range(n_classes):
        gt = []
        npos = 0
        for objects in images:
            boxes = [o for o in objects if o[1] == c]
            gt.append({
                "bb": [b for b, _, _ in boxes],
                "diff": [d for _, _, d in boxes],
                "det": [False] * len(boxes),
            })
            npos += sum(1 for _, _, d in boxes if not d)
        dets = [d for d in detections if d[1] == c]
        scores = np.array([d[2] for d in dets], dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        tp = np.zeros(len(dets))
        fp = np.zeros(len(dets))
        for rank, d in enumerate(order):
            image, _, _, bb = dets[d]
            g = gt[image]
            ovmax, jmax = -np.inf, -1
            for j, bbgt in enumerate(g["bb"]):
                iw = min(bb[2], bbgt[2]) - max(bb[0], bbgt[0]) + 1
                ih = min(bb[3], bbgt[3]) - max(bb[1], bbgt[1]) + 1
                if iw > 0 and ih > 0:
                    ua = ((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
                          + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) - iw * ih)
                    ov = iw * ih / ua
                    if ov > ovmax:
                        ovmax, jmax = ov, j
            if ovmax >= iou_thr:
                if not g["diff"][jmax]:
                    if not g["det"][jmax]:
                        tp[rank] = 1
                        g["det"][jmax] = True
                    else:
                        fp[rank] = 1
            else:
                fp[rank] = 1
        if npos == 0:
            ap07.append(None)
            ap12.append(None)
            continue
        fp = np.cumsum(fp)
        tp = np.cumsum(tp)
        rec = tp / npos
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.nan_to_num(tp / (fp + tp))
        ap = 0.0
        for t in matlab_colon_thresholds():
            p = prec[rec >= t]
            ap += (p.max() if p.size else 0.0) / 11
        ap07.append(float(ap))
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(mpre.size - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        i = np.where(mrec[1:] != mrec[:-1])[0] + 1
        ap12.append(float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i])))
    return ap07, ap12


def mean_ap(aps):
    known = [a for a in aps if a is not None]
    return sum(known) / len(known) if known else None


def random_case(rng, n_images, n_classes):
    """Integer quarter-pixel boxes: GT with difficult flags (some images without any), and
    detections that are jittered GT (true and near misses), duplicates, wrong classes and
    random boxes, with scores in thousandths (so ties happen)."""
    images_q, dets_q = [], []
    for i in range(n_images):
        objects = []
        if rng.random() > 0.15:
            for _ in range(rng.integers(1, 6)):
                x1, y1 = rng.integers(4, 1600, size=2)
                w, h = rng.integers(16, 600, size=2)
                objects.append([int(x1), int(y1), int(x1 + w), int(y1 + h),
                                int(rng.integers(n_classes)), int(rng.random() < 0.2)])
        images_q.append(objects)
        for x1, y1, x2, y2, c, _ in objects:
            for _ in range(rng.integers(0, 4)):  # 0 to 3 detections per object: duplicates
                j = rng.integers(-60, 61, size=4)
                box = [int(x1 + j[0]), int(y1 + j[1]), int(x2 + j[2]), int(y2 + j[3])]
                cls = c if rng.random() > 0.15 else int(rng.integers(n_classes))
                dets_q.append([i, cls, int(rng.integers(0, 1000)), *box])
        for _ in range(rng.integers(0, 4)):  # background detections
            x1, y1 = rng.integers(0, 1600, size=2)
            w, h = rng.integers(8, 500, size=2)
            dets_q.append([i, int(rng.integers(n_classes)), int(rng.integers(0, 1000)),
                           int(x1), int(y1), int(x1 + w), int(y1 + h)])
    order = rng.permutation(len(dets_q))  # input order unrelated to images
    return images_q, [dets_q[k] for k in order]


def decode(images_q, dets_q):
    images = [[([q / 4.0 for q in o[:4]], o[4], bool(o[5])) for o in objs] for objs in images_q]
    dets = [(d[0], d[1], d[2] / 1000.0, [q / 4.0 for q in d[3:7]]) for d in dets_q]
    return images, dets


def cross_check_with_gluoncv_style():
    """The devkit transcription and GluonCV's per-image algorithm must agree wherever their
    tie orders cannot differ (all scores distinct) and no recall lands on 0.6 or 0.7."""
    rng = np.random.default_rng(11)
    images_q, dets_q = random_case(rng, 400, 5)
    images, dets = decode(images_q, dets_q)
    dets = [(d[0], d[1], d[2] + k * 1e-9, d[3]) for k, d in enumerate(dets)]
    ap07, _ = devkit_ap(images, dets, 5, 0.5)
    ours, theirs = mean_ap(ap07), gluoncv_style_map(images, dets, 5, 0.5)
    assert abs(ours - theirs) < 1e-12, (ours, theirs)
    print(f"cross-check: devkit transcription {ours} = GluonCV-style {theirs}")


def write_fixture():
    cross_check_with_gluoncv_style()
    rng = np.random.default_rng(20261123)
    n_classes = 5
    images_q, dets_q = random_case(rng, 120, n_classes)
    # Class 4 keeps only difficult boxes: it has no positives and no AP.
    for objs in images_q:
        for o in objs:
            if o[4] == 4:
                o[5] = 1
    images, dets = decode(images_q, dets_q)
    cases = []
    for thr in (0.5, 0.7):
        ap07, ap12 = devkit_ap(images, dets, n_classes, thr)
        cases.append({"iou": thr, "ap07": ap07, "ap12": ap12,
                      "map07": mean_ap(ap07), "map12": mean_ap(ap12)})
    out = {
        "note": "written by voc_eval_golden.py; boxes in quarter pixels (devkit 1-based "
                "coordinates x 4), scores in thousandths",
        "classes": n_classes,
        "images": images_q,
        "detections": dets_q,
        "cases": cases,
    }
    path = Path(__file__).with_name("voc_random.json")
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(images_q)} images, {len(dets_q)} detections")
    for c in cases:
        print(c["iou"], c["map07"], c["map12"])


def gluoncv_style_map(images, dets, n_classes, iou_thr):
    """GluonCV's VOC07MApMetric algorithm written out in numpy: update() per image (per class:
    sort, IoU matrix, argmax, greedy marking), then cumulative sums per class."""
    score = {c: [] for c in range(n_classes)}
    match = {c: [] for c in range(n_classes)}
    n_pos = {c: 0 for c in range(n_classes)}
    dets_by_image = [[] for _ in images]
    for d in dets:
        dets_by_image[d[0]].append(d)
    for objects, idets in zip(images, dets_by_image):
        gt_b = np.array([o[0] for o in objects], dtype=np.float64).reshape(-1, 4)
        gt_l = np.array([o[1] for o in objects], dtype=np.int64)
        gt_d = np.array([o[2] for o in objects], dtype=bool)
        p_b = np.array([d[3] for d in idets], dtype=np.float64).reshape(-1, 4)
        p_l = np.array([d[1] for d in idets], dtype=np.int64)
        p_s = np.array([d[2] for d in idets], dtype=np.float64)
        for l in np.unique(np.concatenate((p_l, gt_l))):
            m = p_l == l
            pb, ps = p_b[m], p_s[m]
            order = ps.argsort()[::-1]
            pb, ps = pb[order], ps[order]
            g = gt_l == l
            gb, gd = gt_b[g], gt_d[g]
            n_pos[l] += int(np.logical_not(gd).sum())
            score[l].extend(ps)
            if len(pb) == 0:
                continue
            if len(gb) == 0:
                match[l].extend((0,) * pb.shape[0])
                continue
            pb = pb.copy(); pb[:, 2:] += 1
            gb = gb.copy(); gb[:, 2:] += 1
            tl = np.maximum(pb[:, None, :2], gb[:, :2])
            br = np.minimum(pb[:, None, 2:], gb[:, 2:])
            inter = np.prod(br - tl, axis=2) * (tl < br).all(axis=2)
            area_p = np.prod(pb[:, 2:] - pb[:, :2], axis=1)
            area_g = np.prod(gb[:, 2:] - gb[:, :2], axis=1)
            iou = inter / (area_p[:, None] + area_g - inter)
            gt_index = iou.argmax(axis=1)
            gt_index[iou.max(axis=1) < iou_thr] = -1
            selec = np.zeros(gb.shape[0], dtype=bool)
            for gi in gt_index:
                if gi >= 0:
                    if gd[gi]:
                        match[l].append(-1)
                    else:
                        match[l].append(0 if selec[gi] else 1)
                    selec[gi] = True
                else:
                    match[l].append(0)
    aps = []
    for l in range(n_classes):
        s = np.array(score[l])
        mt = np.array(match[l], dtype=np.int32)[s.argsort()[::-1]]
        tp, fp = np.cumsum(mt == 1), np.cumsum(mt == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = tp / (fp + tp)
        if n_pos[l] == 0:
            aps.append(np.nan)
            continue
        rec = tp / n_pos[l]
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            ap += (np.max(np.nan_to_num(prec)[rec >= t]) if np.sum(rec >= t) else 0) / 11.0
        aps.append(ap)
    return float(np.nanmean(aps))


def bench():
    """VOC07 test's size: 4,952 images, 20 classes, ~14k boxes (~2.8 per image), ~150k
    detections (~30 per image)."""
    rng = np.random.default_rng(7)
    n_images, n_classes = 4952, 20
    images, dets = [], []
    for i in range(n_images):
        objects = []
        for _ in range(rng.poisson(2.9)):
            x1, y1 = rng.uniform(0, 400, size=2)
            w, h = rng.uniform(10, 200, size=2)
            objects.append(([x1, y1, x1 + w, y1 + h], int(rng.integers(n_classes)), rng.random() < 0.1))
        images.append(objects)
        for _ in range(30):
            if objects and rng.random() < 0.5:
                b, c, _ = objects[rng.integers(len(objects))]
                box = list(np.array(b) + rng.normal(0, 8, size=4))
            else:
                x1, y1 = rng.uniform(0, 400, size=2)
                w, h = rng.uniform(10, 200, size=2)
                box, c = [x1, y1, x1 + w, y1 + h], int(rng.integers(n_classes))
            dets.append((i, c, float(rng.random()), box))
    n_gt = sum(len(o) for o in images)
    start = time.perf_counter()
    m = gluoncv_style_map(images, dets, n_classes, 0.5)
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": "GluonCV VOC07MApMetric algorithm (numpy)", "images": n_images,
                      "detections": len(dets), "ground_truth": n_gt, "seconds": round(seconds, 3),
                      "map": m}))


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
    else:
        write_fixture()
