#!/usr/bin/env bash
# `make bench`: our training step and data loader beside their PyTorch peers, on this machine,
# in one run (ratios from one run count; absolute numbers drift). The training step and the
# loader run each side twice, alternating, and keep the better run; the detectors and FCN run
# BENCH_PAIRS (3) pairs and report the median of the per-pair ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$root/target/release
py=${TRICKS_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/tricks/torch-2.11.0/venv/bin/python}
"$py" -c "import timm, torchvision" 2>/dev/null \
  || "$py" -m pip install --quiet --disable-pip-version-check timm==1.0.31 torchvision==0.26.0
threads=${BENCH_THREADS:-$(nproc)}
field() { "$py" -c "import json,sys; print(json.loads(sys.argv[1])['$1'])" "$2"; }
best() { "$py" -c "import sys; print(max(float(v) for v in sys.argv[1:]))" "$@"; }

# The peer maps our architecture names to timm's (mobilenet_v1 is timm's mobilenetv1_100;
# inception_v3 is spelled alike, both without the auxiliary classifier). Inception-V3 runs at
# its smallest input, 75 px.
for arch_side in resnet50d:64 mobilenet_v1:64 inception_v3:75; do
  arch=${arch_side%:*} side=${arch_side#*:}
  step="--arch $arch --batch 16 --input-size $side --device cpu --threads $threads --warmup 3 --iters 10"
  echo "== training step: $step"
  ours=() ; peer=()
  for _ in 1 2; do
    ours+=("$(field images_per_s "$("$bin/backbone" bench $step --json 2>/dev/null)")")
    peer+=("$(field images_per_s "$("$py" bench/train_step_timm.py $step 2>/dev/null)")")
  done
  o=$(best "${ours[@]}"); p=$(best "${peer[@]}")
  printf 'ours %.1f images/s, PyTorch eager (timm) %.1f images/s, ratio %.3f\n' "$o" "$p" \
    "$("$py" -c "print($o / $p)")"
done

jpegs=$root/target/bench-jpegs
if [ ! -d "$jpegs/train" ]; then
  cargo run --release --quiet -p datasets --example bench_loader -- --make-jpegs "$jpegs" --batches 1 --warmup 1 >/dev/null
fi
workers=${BENCH_WORKERS:-1}
echo "== data loader: 500x375 JPEGs -> the paper's train augmentation at 224, batch 64, $workers worker(s)"
ours=() ; peer=()
for _ in 1 2; do
  ours+=("$(field images_per_s "$("$bin/backbone" bench --data "imagenet:$jpegs" --workers "$workers" --batch 64 \
    --input-size 224 --warmup 2 --iters 20 --json)")")
  peer+=("$(field images_per_s "$("$py" bench/loader_torchvision.py --data "$jpegs" --workers "$workers" --batch 64 \
    --size 224 --warmup 2 --batches 20 2>/dev/null)")")
done
o=$(best "${ours[@]}"); p=$(best "${peer[@]}")
printf 'ours %.1f images/s, torchvision (PIL) %.1f images/s, ratio %.3f\n' "$o" "$p" \
  "$("$py" -c "print($o / $p)")"

# Faster R-CNN: a training step and inference on random images, ours beside torchvision's
# fasterrcnn_resnet50_fpn (frozen BN, layer2..4 trainable, as fine-tuned from ImageNet) at the
# same size, batch, threads and memory format, A B A B, the ratio taken pair by pair
# (bench/pairs.py prints each pair and the median). torchvision has no C4 model: C4 is timed
# beside torchvision's own parts assembled as R50-C4 (bench/detect_c4_torchvision.py).
pairs=${BENCH_PAIRS:-3}
for case in "fpn 800/1333" "fpn 800/1333 --channels-last" "c4 600/1000" "fpn 320/480"; do
  set -- $case
  det="--batch 1 --size $2 --device cpu --threads $threads --warmup 1 --iters 3 ${3:-}"
  echo "== Faster R-CNN $1 (ResNet-50), $det"
  "$py" bench/pairs.py --pairs "$pairs" --fields train_images_per_s,inference_images_per_s \
    --a "$bin/detect bench --design $1 --arch resnet50 $det --json" \
    --b "$py bench/detect_$([ "$1" = c4 ] && echo c4_)torchvision.py $det"
done

# FCN (dilated ResNet-50, output stride 8, 150 classes, aux head) beside torchvision's
# fcn_resnet50: training step and inference at the paper's crop (480) and a small one.
for crop in ${BENCH_FCN_CROPS:-128 480}; do
  fcn="--batch ${BENCH_FCN_BATCH:-2} --crop $crop --device cpu --threads $threads --warmup 1 --iters ${BENCH_FCN_ITERS:-3}"
  echo "== FCN-ResNet-50: $fcn"
  "$py" bench/pairs.py --pairs "$pairs" --fields train_images_per_s,infer_images_per_s \
    --a "$bin/segment bench $fcn --json" --b "$py bench/fcn_torchvision.py $fcn"
done

# bfloat16 autocast (train.amp = "bf16", --amp bf16): each bench beside itself in fp32 and
# beside PyTorch's own CPU bf16 autocast, A B A B, at sizes that keep a pair within minutes on a
# CPU without bf16 units, where bf16 runs about 10x slower than fp32. Only on request:
# BENCH_BF16=1 make bench.
if [ "${BENCH_BF16:-0}" = 1 ]; then
  step="--arch resnet50d --batch 16 --input-size 64 --device cpu --threads $threads --warmup 1 --iters 3"
  det="--batch 1 --size 160/240 --device cpu --threads $threads --warmup 1 --iters 2"
  fcn="--batch 1 --crop 96 --device cpu --threads $threads --warmup 1 --iters 2"
  echo "== bf16: backbone step ($step), ours bf16 / ours fp32, then ours bf16 / PyTorch bf16"
  "$py" bench/pairs.py --pairs "$pairs" --fields images_per_s \
    --a "$bin/backbone bench $step --amp bf16 --json" --b "$bin/backbone bench $step --json"
  "$py" bench/pairs.py --pairs "$pairs" --fields images_per_s \
    --a "$bin/backbone bench $step --amp bf16 --json" --b "$py bench/train_step_timm.py $step --amp bf16"
  echo "== bf16: Faster R-CNN FPN ($det)"
  "$py" bench/pairs.py --pairs "$pairs" --fields train_images_per_s,inference_images_per_s \
    --a "$bin/detect bench --design fpn --arch resnet50 $det --amp bf16 --json" \
    --b "$bin/detect bench --design fpn --arch resnet50 $det --json"
  "$py" bench/pairs.py --pairs "$pairs" --fields train_images_per_s,inference_images_per_s \
    --a "$bin/detect bench --design fpn --arch resnet50 $det --amp bf16 --json" \
    --b "$py bench/detect_torchvision.py $det --amp bf16"
  echo "== bf16: FCN-ResNet-50 ($fcn)"
  "$py" bench/pairs.py --pairs "$pairs" --fields train_images_per_s,infer_images_per_s \
    --a "$bin/segment bench $fcn --amp bf16 --json" --b "$bin/segment bench $fcn --json"
  "$py" bench/pairs.py --pairs "$pairs" --fields train_images_per_s,infer_images_per_s \
    --a "$bin/segment bench $fcn --amp bf16 --json" --b "$py bench/fcn_torchvision.py $fcn --amp bf16"
fi

# The whole fashion-quick job (train with an evaluation per epoch, then `backbone eval` of the
# best checkpoint) beside the same recipe as a plain PyTorch script. About 15 minutes a pair on
# 2 cores, so only on request: BENCH_JOB=1 make bench (BENCH_JOB_PAIRS=N for more pairs).
if [ "${BENCH_JOB:-0}" = 1 ]; then
  fm=$(cat "$root/target/fashion-mnist-dir")
  run_dir=$root/target/bench-fashion-quick
  now() { "$py" -c 'import time; print(time.time())'; }
  echo "== the whole fashion-quick job (train + eval, CPU, 2 threads) beside bench/fashion_quick_torch.py"
  for i in $(seq "${BENCH_JOB_PAIRS:-1}"); do
    rm -rf "$run_dir"
    t0=$(now)
    "$bin/backbone" train --config configs/backbone/fashion-quick.toml --data "fashion-mnist:$fm" \
      --out "$run_dir" --device cpu >/dev/null 2>&1
    ours_top1=$(field top1 "$("$bin/backbone" eval --ckpt "$run_dir/best.safetensors" --data "fashion-mnist:$fm" --json)")
    t1=$(now)
    peer=$("$py" bench/fashion_quick_torch.py --data "$fm" --threads 2 2>/dev/null)
    t2=$(now)
    "$py" -c "import sys; o, p = float(sys.argv[1]) - float(sys.argv[2]), float(sys.argv[3]) - float(sys.argv[1]); \
print(f'pair $i: ours {o:.1f} s (test top-1 {float(sys.argv[4]):.4f}), PyTorch {p:.1f} s (test top-1 {float(sys.argv[5]):.4f}), speed ratio ours/PyTorch {p / o:.3f}')" \
      "$t1" "$t0" "$t2" "$ours_top1" "$(field top1 "$peer")"
  done
fi
