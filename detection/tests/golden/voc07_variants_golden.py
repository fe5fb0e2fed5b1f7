"""Golden values for detection/tests/eval_voc07_variants.rs: the two VOC2007 11-point rules.

    python voc07_variants_golden.py      # writes voc07_variants.json beside this file

Two transcriptions in numpy (our own code, written from the rules as the sources read):

- `devkit_voc07`: the VOC devkit's VOCevaldet.m (VOC2007 devkit onwards). Per class, all
  detections sorted by score (stable, as MATLAB's sort); each matched to the box of its image
  with the highest inclusive-pixel IoU in doubles (`iw = min(x2) - max(x1) + 1`, first box on
  a tie, only boxes that overlap); `ovmax >= minoverlap` and not yet detected -> TP, already
  detected -> FP, difficult -> neither, below -> FP. 11-point AP at MATLAB's `0:0.1:1` values
  (first half `k * 0.1`, second half `1 - (10 - k) * 0.1`), `max` skipping NaN, empty -> 0,
  accumulated `ap = ap + p / 11`. mAP: the plain mean over classes with positives.
- `gluoncv_voc07`: GluonCV's VOC07MApMetric (gluoncv/utils/metrics/voc_detection.py at
  49be0191): update() per image and class with float32 arrays as its validate() hands them
  (GluonCV boxes are 0-based inclusive, i.e. devkit - 1): detections sorted by score, `+1` on
  x2, y2, IoU matrix by bbox_iou (float32: prod(br - tl) * all(tl < br) over
  area_a + area_b - area_i), argmax per detection, `iou.max < iou_thresh` -> unmatched
  (numpy compares float32 with the threshold cast to float32), then greedy marking in
  score order; per class all scores ranked, tp/fp cumsums, 11 points at
  `np.arange(0., 1.1, 0.1)`, `nan_to_num(prec)`, `ap += p / 11.`; mAP = np.nanmean over
  the classes 0..max label seen, NaN where a class has no positives or never occurred.

Scores are distinct within each class, so neither rule's order among equal scores matters
(GluonCV's is numpy's unstable argsort). Boxes are stored in quarter pixels of the devkit's
1-based coordinates and scores in thousandths, as integers, so Rust and Python start from the
same doubles (x = q / 4.0, score = s / 1000.0).

The scene is built to hit every corner where the two rules part or where a rule is easy to
get wrong: recall exactly 0.6 (class 0) and 0.7 (class 1); IoU exactly 0.5 and 0.7 (class
2); difficult boxes matched first (class 3); duplicates (class 4); a class with only
difficult boxes (5, no AP); a class that never occurs below the highest one (6); two boxes
whose IoUs differ in double but tie in float32, so GluonCV's argmax takes the first and a
later detection of the other is a duplicate for the devkit only (7); IoUs just below 0.5
(class 8) and 0.7 (class 9) in double that round up to the threshold in float32; random
jittered detections on classes 10 and 11 over all images (12 classes: numpy's pairwise sum
in nanmean runs its 8-way unrolled path plus a remainder).
"""

import json
from pathlib import Path

import numpy as np

N_CLASSES = 12


# ---------------------------------------------------------------- the devkit, VOCevaldet.m


def matlab_points():
    return [k * 0.1 if k <= 5 else 1.0 - (10 - k) * 0.1 for k in range(11)]


def devkit_class_ap(images, dets, c, thr):
    gt, npos = [], 0
    for objects in images:
        mine = [o for o in objects if o[1] == c]
        gt.append({"bb": [o[0] for o in mine], "diff": [o[2] for o in mine],
                   "det": [False] * len(mine)})
        npos += sum(1 for o in mine if not o[2])
    mine = [d for d in dets if d[1] == c]
    order = sorted(range(len(mine)), key=lambda k: -mine[k][2])  # Python's sort is stable
    tp, fp = np.zeros(len(mine)), np.zeros(len(mine))
    for rank, k in enumerate(order):
        image, _, _, bb = mine[k]
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
        if ovmax >= thr:
            if not g["diff"][jmax]:
                if not g["det"][jmax]:
                    tp[rank] = 1
                    g["det"][jmax] = True
                else:
                    fp[rank] = 1
        else:
            fp[rank] = 1
    if npos == 0:
        return None
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / npos
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = tp / (fp + tp)
    ap = 0.0
    for t in matlab_points():
        sel = prec[rec >= t]
        sel = sel[~np.isnan(sel)]  # MATLAB's max skips NaN
        ap = ap + (float(sel.max()) if sel.size else 0.0) / 11
    return ap


def devkit_voc07(images, dets, thr):
    aps = [devkit_class_ap(images, dets, c, thr) for c in range(N_CLASSES)]
    known = [a for a in aps if a is not None]
    mean = 0.0
    for a in known:
        mean += a
    return aps, mean / len(known)


# ------------------------------------------------------------ GluonCV, VOC07MApMetric


def gluoncv_voc07(images, dets, thr):
    n_pos, scores, matches = {}, {}, {}
    by_image = [[] for _ in images]
    for d in dets:
        by_image[d[0]].append(d)
    for objects, idets in zip(images, by_image):
        # GluonCV's boxes: 0-based inclusive (the devkit's minus 1), float32.
        gt_bbox = np.array([[v - 1 for v in o[0]] for o in objects], np.float32).reshape(-1, 4)
        gt_label = np.array([o[1] for o in objects], np.int64)
        gt_diff = np.array([o[2] for o in objects], np.float32)
        pred_bbox = np.array([[v - 1 for v in d[3]] for d in idets], np.float32).reshape(-1, 4)
        pred_label = np.array([d[1] for d in idets], np.int64)
        pred_score = np.array([d[2] for d in idets], np.float32)
        for l in np.unique(np.concatenate((pred_label, gt_label))):
            l = int(l)
            pm = pred_label == l
            pb, ps = pred_bbox[pm], pred_score[pm]
            order = ps.argsort()[::-1]
            pb, ps = pb[order], ps[order]
            gm = gt_label == l
            gb, gd = gt_bbox[gm], gt_diff[gm]
            n_pos[l] = n_pos.get(l, 0) + int(np.logical_not(gd).sum())
            scores.setdefault(l, []).extend(ps)
            matches.setdefault(l, [])
            if len(pb) == 0:
                continue
            if len(gb) == 0:
                matches[l].extend((0,) * pb.shape[0])
                continue
            pb = pb.copy()
            pb[:, 2:] += 1
            gb = gb.copy()
            gb[:, 2:] += 1
            tl = np.maximum(pb[:, None, :2], gb[:, :2])
            br = np.minimum(pb[:, None, 2:4], gb[:, 2:4])
            area_i = np.prod(br - tl, axis=2) * (tl < br).all(axis=2)
            area_a = np.prod(pb[:, 2:4] - pb[:, :2], axis=1)
            area_b = np.prod(gb[:, 2:4] - gb[:, :2], axis=1)
            iou = area_i / (area_a[:, None] + area_b - area_i)
            assert iou.dtype == np.float32
            gt_index = iou.argmax(axis=1)
            gt_index[iou.max(axis=1) < np.float32(thr)] = -1
            selec = np.zeros(gb.shape[0], dtype=bool)
            for gi in gt_index:
                if gi >= 0:
                    if gd[gi]:
                        matches[l].append(-1)
                    else:
                        matches[l].append(0 if selec[gi] else 1)
                    selec[gi] = True
                else:
                    matches[l].append(0)
    n_fg = max(n_pos.keys()) + 1
    aps = []
    for l in range(n_fg):
        if l not in n_pos or n_pos[l] == 0:
            aps.append(np.nan)
            continue
        s = np.array(scores[l])
        m = np.array(matches[l], dtype=np.int32)[s.argsort()[::-1]]
        tp, fp = np.cumsum(m == 1), np.cumsum(m == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = tp / (fp + tp)
        rec = tp / n_pos[l]
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(np.nan_to_num(prec)[rec >= t])
            ap += p / 11.0
        aps.append(float(ap))
    m = float(np.nanmean(np.array(aps, dtype=np.float64)))
    aps = [None if np.isnan(a) else a for a in aps] + [None] * (N_CLASSES - n_fg)
    return aps, m


# ------------------------------------------------------------------------ the scene


def f64_iou(a, b):
    """The devkit's IoU of two devkit boxes (in pixels)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1)
                      + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - iw * ih)


def f32_iou(a, b):
    """GluonCV's IoU of the same boxes (their continuous form, float32)."""
    a = np.array([a[0] - 1, a[1] - 1, a[2], a[3]], np.float32)
    b = np.array([b[0] - 1, b[1] - 1, b[2], b[3]], np.float32)
    tl, br = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    if not (tl < br).all():
        return np.float32(0)
    i = np.prod(br - tl)
    return i / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - i)


def quarters(box):
    return [int(round(v * 4)) for v in box]


class Scene:
    def __init__(self, rng):
        self.rng = rng
        self.images = []  # per image: [x1q, y1q, x2q, y2q, class, difficult]
        self.dets = []  # [image, class, score (thousandths), x1q, y1q, x2q, y2q]
        self.next_score = {c: 999 for c in range(N_CLASSES)}

    def image(self):
        self.images.append([])
        return len(self.images) - 1

    def gt(self, image, box, c, difficult=False):
        self.images[image].append(quarters(box) + [c, int(difficult)])

    def det(self, image, box, c):
        """A detection scored below every earlier one of its class: call in rank order."""
        s = self.next_score[c]
        self.next_score[c] -= 7
        assert s > 0
        self.dets.append([image, c, s] + quarters(box))

    def random_box(self, size=(20, 200)):
        x1, y1 = self.rng.integers(1, 400, size=2) + self.rng.integers(0, 4, size=2) / 4
        w, h = self.rng.integers(*size, size=2)
        return [float(x1), float(y1), float(x1 + w), float(y1 + h)]

    def background(self, image, c):
        self.det(image, [900.0, 900.0, 940.0, 940.0], c)


def continuous(x, y, w, h):
    """The devkit box of the continuous box [x, y, x + w, y + h]."""
    return [x + 1.0, y + 1.0, x + w, y + h]


def build(rng):
    s = Scene(rng)
    # Class 0: recall exactly 3/5 at precision 1, then a miss, then 4/5.
    imgs = [s.image() for _ in range(5)]
    boxes = [s.random_box() for _ in imgs]
    for i, b in zip(imgs, boxes):
        s.gt(i, b, 0)
    for i, b in list(zip(imgs, boxes))[:3]:
        s.det(i, b, 0)
    s.background(imgs[0], 0)
    s.det(imgs[3], boxes[3], 0)
    # Class 1: recall exactly 7/10 after a miss, then two misses and one more hit.
    imgs = [s.image() for _ in range(10)]
    boxes = [s.random_box() for _ in imgs]
    for i, b in zip(imgs, boxes):
        s.gt(i, b, 1)
    for k in range(7):
        s.det(imgs[k], boxes[k], 1)
        if k == 4:
            s.background(imgs[k], 1)
    s.background(imgs[8], 1)
    s.background(imgs[9], 1)
    s.det(imgs[7], boxes[7], 1)
    # Class 2: IoU exactly 0.5 (10x10 in 20x10 pixels) and exactly 0.7 (14x10), and 0.45.
    for width in (10, 14, 10, 9, 14):
        i = s.image()
        x, y = [float(v) for v in rng.integers(1, 300, size=2)]
        s.gt(i, [x, y, x + 19, y + 9], 2)
        s.det(i, [x, y, x + width - 1, y + 9], 2)
        assert f64_iou([x, y, x + width - 1, y + 9], [x, y, x + 19, y + 9]) == width / 20
    # Class 3: difficult boxes found first (precision 0/0), then hits, misses and a
    # difficult box found twice.
    imgs = [s.image() for _ in range(5)]
    boxes = [s.random_box() for _ in imgs]
    for k, (i, b) in enumerate(zip(imgs, boxes)):
        s.gt(i, b, 3, difficult=k < 2)
    s.det(imgs[0], boxes[0], 3)
    s.det(imgs[1], boxes[1], 3)
    s.det(imgs[2], boxes[2], 3)
    s.det(imgs[0], boxes[0], 3)
    s.background(imgs[3], 3)
    s.det(imgs[4], boxes[4], 3)
    # Class 4: duplicates of one box, interleaved with other hits.
    imgs = [s.image() for _ in range(3)]
    boxes = [s.random_box() for _ in imgs]
    for i, b in zip(imgs, boxes):
        s.gt(i, b, 4)
    s.det(imgs[0], boxes[0], 4)
    s.det(imgs[0], [v + 0.25 for v in boxes[0]], 4)
    s.det(imgs[1], boxes[1], 4)
    s.det(imgs[0], [v - 0.5 for v in boxes[0]], 4)
    s.det(imgs[2], boxes[2], 4)
    # Class 5: only difficult boxes, some found: no positives, no AP.
    for _ in range(3):
        i = s.image()
        b = s.random_box()
        s.gt(i, b, 5, difficult=True)
        s.det(i, b, 5)
    # Class 6: never occurs.
    # Class 7: two boxes whose IoUs with a detection differ in double and tie in float32.
    # Both lie inside the detection, so IoU = area / the detection's area: an a x a square
    # and an (a + 1/4) x (a - 1/4) rectangle, 1/16 pixel smaller, listed first.
    for a in (3000.0, 2600.0):
        x, y = [float(v) for v in rng.integers(0, 50, size=2)]
        first = continuous(x, y, a + 0.25, a - 0.25)
        square = continuous(x, y, a, a)
        det = continuous(x, y, a + 40, a + 40)
        assert f64_iou(det, square) > f64_iou(det, first) > 0.7
        assert f32_iou(det, square) == f32_iou(det, first)
        i = s.image()
        s.gt(i, first, 7)
        s.gt(i, square, 7)
        s.det(i, det, 7)  # the devkit takes the square, GluonCV the first box
        s.det(i, square, 7)  # so this one is a duplicate for the devkit only
    # Class 8: IoU 1/(32 a^2) below 0.5 in double, exactly 0.5 in float32: an
    # (a + 1/4) x (a - 1/4) detection inside a 2a x a box. And one plain hit.
    for a in (2000.0, 1700.0):
        x, y = [float(v) for v in rng.integers(0, 50, size=2)]
        gt, det = continuous(x, y, 2 * a, a), continuous(x, y, a + 0.25, a - 0.25)
        assert f64_iou(det, gt) < 0.5 <= f32_iou(det, gt)
        i = s.image()
        s.gt(i, gt, 8)
        s.det(i, det, 8)
    i = s.image()
    b = s.random_box()
    s.gt(i, b, 8)
    s.det(i, b, 8)
    # Class 9: IoU 0.4375/(10 a^2) below 0.7 in double, float32(0.7) in float32: a
    # (7a + 7/4) x (a - 1/4) detection inside a 10a x a box.
    for a in (2500.0, 2200.0):
        x, y = [float(v) for v in rng.integers(0, 50, size=2)]
        gt, det = continuous(x, y, 10 * a, a), continuous(x, y, 7 * a + 1.75, a - 0.25)
        assert f64_iou(det, gt) < 0.7 and f32_iou(det, gt) >= np.float32(0.7)
        i = s.image()
        s.gt(i, gt, 9)
        s.det(i, det, 9)
    # Classes 10 and 11: random objects on every image so far and on 40 more, jittered
    # detections (some near misses), and background boxes.
    while len(s.images) < 80:
        s.image()
    planned = []
    for i in range(len(s.images)):
        for _ in range(rng.integers(0, 3)):
            c = int(rng.integers(10, 12))
            b = s.random_box((16, 120))
            s.gt(i, b, c, difficult=rng.random() < 0.15)
            for _ in range(rng.integers(0, 3)):
                j = rng.integers(-12, 13, size=4) / 4
                planned.append((rng.random(), i, c, [v + float(x) for v, x in zip(b, j)]))
        if rng.random() < 0.5:
            planned.append((rng.random(), i, int(rng.integers(10, 12)), s.random_box()))
    planned.sort(key=lambda p: -p[0])
    for _, i, c, b in planned:
        s.det(i, b, c)
    return s


def decode(scene):
    images = [[([q / 4.0 for q in o[:4]], o[4], bool(o[5])) for o in objs]
              for objs in scene.images]
    dets = [(d[0], d[1], d[2] / 1000.0, [q / 4.0 for q in d[3:7]]) for d in scene.dets]
    return images, dets


def main():
    rng = np.random.default_rng(20261129)
    scene = build(rng)
    order = rng.permutation(len(scene.dets))  # input order unrelated to images and ranks
    scene.dets = [scene.dets[k] for k in order]
    images, dets = decode(scene)
    for c in range(N_CLASSES):
        scores = [d[2] for d in dets if d[1] == c]
        assert len(scores) == len(set(scores)), f"class {c} has tied scores"
    cases = []
    for thr in (0.5, 0.7):
        dev_aps, dev_map = devkit_voc07(images, dets, thr)
        gcv_aps, gcv_map = gluoncv_voc07(images, dets, thr)
        cases.append({"iou": thr, "devkit": {"ap": dev_aps, "map": dev_map},
                      "gluoncv": {"ap": gcv_aps, "map": gcv_map}})
        print(f"IoU {thr}: devkit mAP {dev_map!r}, GluonCV mAP {gcv_map!r}")
        for c, (a, b) in enumerate(zip(dev_aps, gcv_aps)):
            if a != b:
                print(f"  class {c}: devkit {a!r} GluonCV {b!r}")
    out = {
        "note": "written by voc07_variants_golden.py; boxes in quarter pixels of the devkit's "
                "1-based coordinates, scores in thousandths",
        "classes": N_CLASSES,
        "images": scene.images,
        "detections": scene.dets,
        "cases": cases,
    }
    path = Path(__file__).with_name("voc07_variants.json")
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(scene.images)} images, {len(scene.dets)} detections")


if __name__ == "__main__":
    main()
