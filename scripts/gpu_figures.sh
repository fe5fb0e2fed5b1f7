#!/usr/bin/env bash
# The GPU figures of docs/results.md in one run, on a machine with one CUDA GPU and Python torch
# 2.11 + torchvision + timm (the PyTorch peers). The project's binaries (backbone, detect,
# segment, datasets) must be on PATH and find libtorch; built here with `make build`, that is
# PATH=target/release:$PATH.
#
#   scripts/gpu_figures.sh [--out DIR] [--budget SECONDS] [--fashion-mnist DIR] [--device D]
#                          [PART...]
#
# Parts, in the order they run (default: all):
#   fcn        `segment bench` beside torchvision's fcn_resnet50, A B A B, ratio per pair:
#              crop 480 batch 8 and crop 128 batch 16, each in fp32, fp16 and bf16 autocast
#   fcn-mini   the FCN mini recipe end to end on the GPU with fp16 autocast: scenes, the
#              fashion-quick backbone, `segment finetune`, `segment eval` (single- and
#              multi-scale), `segment predict`; each stage's wall time. MINI_AMP=bf16 runs the
#              backbone and the fine-tuning in bf16 instead (the accuracy beside fp16's)
#   detect     `detect bench` (FPN 800/1333, batch 2) beside torchvision's fasterrcnn_resnet50_fpn,
#              fp32 and bf16
#   backbone   `backbone bench` (ResNet-50-D, batch 64 at 224) beside timm, fp32, fp16, bf16
#
# Each part stops at its share of --budget (a part not started in time is skipped and says
# so), logs to DIR/<part>.log, and the summary goes to DIR/summary.txt.
set -uo pipefail
out=runs/gpu budget=540 device=cuda fm=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist} parts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --fashion-mnist) fm=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    fcn|fcn-mini|detect|backbone) parts+=("$1"); shift ;;
    *) echo "gpu_figures: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -gt 0 ] || parts=(fcn fcn-mini detect backbone)
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
summary=$out/summary.txt
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
note() { echo "$*" | tee -a "$summary"; }
# run NAME LIMIT CMD...: one command with a time limit, its output in the part's log.
run() {
  local name=$1 limit=$2; shift 2
  local l; l=$(left)
  [ "$l" -lt "$limit" ] && limit=$l
  if [ "$limit" -lt 10 ]; then note "$name: skipped (budget spent)"; return 99; fi
  local t0; t0=$(date +%s.%N)
  echo "\$ $*" >>"$log"
  timeout "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  note "$name: rc $rc in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  return $rc
}
pairs() { # pairs NAME LIMIT NPAIRS FIELDS OURS PEER
  run "$1" "$2" "$py" "$root/bench/pairs.py" --pairs "$3" --fields "$4" --a "$5" --b "$6"
  grep -E "median ratio|^pair" "$log" | tail -n $(( $3 + 2 )) | sed "s/^/  $1: /" | tee -a "$summary"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$summary"
"$py" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$summary"

for part in "${parts[@]}"; do
  log=$out/$part.log
  case "$part" in
    fcn)
      for c in "480 8 3 10 2" "480 8 3 10 2 --amp fp16" "480 8 3 10 2 --amp bf16" \
               "128 16 3 20 1" "128 16 3 20 1 --amp fp16" "128 16 3 20 1 --amp bf16"; do
        set -- $c
        a="--batch $2 --crop $1 --device $device --warmup $3 --iters $4 ${6:-} ${7:-}"
        pairs "fcn $1 b$2 ${7:-fp32}" 100 "$5" train_images_per_s,infer_images_per_s \
          "segment bench $a --json" "$py $root/bench/fcn_torchvision.py $a"
      done ;;
    fcn-mini)
      w=$out/mini
      mkdir -p "$w"
      amp=${MINI_AMP:-fp16}; [ "$device" = cpu ] && amp=${MINI_AMP:-false}
      run "synth" 60 datasets synth --out "$w/scenes96" --fashion-mnist "$fm" --size 96 \
        --train 4000 --val 300 --test 300 &&
      run "fashion-quick (backbone train)" 120 backbone train \
        --config "$root/configs/backbone/fashion-quick.toml" --data "fashion-mnist:$fm" \
        --out "$w/fashion-quick" --device $device --set data.workers=6 \
        ${MINI_AMP:+--set train.amp=$MINI_AMP} ${QUICK_SETS:-} &&
      run "FCN mini recipe (segment finetune, amp $amp)" 200 segment finetune \
        --backbone "$w/fashion-quick/best.safetensors" \
        --config "$root/configs/segmentation/fashion-scenes-fcn.toml" \
        --data "ade20k:$w/scenes96/ADEChallengeData2016" --out "$w/fcn" --device $device \
        --set train.amp=$amp --set data.workers=6 ${MINI_SETS:-} &&
      run "segment eval" 60 segment eval --ckpt "$w/fcn/best.safetensors" \
        --data "ade20k:$w/scenes96/ADEChallengeData2016" --device $device --json &&
      run "segment eval --multi-scale" 60 segment eval --ckpt "$w/fcn/best.safetensors" \
        --data "ade20k:$w/scenes96/ADEChallengeData2016" --device $device --multi-scale \
        --base-size 96 --crop-size 64 --json &&
      run "segment predict" 30 segment predict --ckpt "$w/fcn/best.safetensors" \
        --image "$(ls "$w"/scenes96/ADEChallengeData2016/images/validation/*.jpg | head -1)" \
        --out "$w/mask.png" --overlay "$w/overlay.png" --device $device --json
      grep -h '"mIoU"' "$log" | tail -2 | sed 's/^/  /' | tee -a "$summary"
      tail -n 3 "$w/fcn/metrics.jsonl" 2>/dev/null | sed 's/^/  /' | tee -a "$summary" ;;
    detect)
      for amp in "" "--amp bf16"; do
        d="--batch 2 --size 800/1333 --device $device --warmup 3 --iters 10 $amp"
        pairs "detect fpn 800/1333 b2 ${amp:-fp32}" 100 1 train_images_per_s,inference_images_per_s \
          "detect bench --design fpn --arch resnet50 $d --json" "$py $root/bench/detect_torchvision.py $d"
      done ;;
    backbone)
      for amp in "" "--amp fp16" "--amp bf16"; do
        b="--arch resnet50d --batch 64 --input-size 224 --device $device --warmup 5 --iters 20 --channels-last $amp"
        pairs "backbone resnet50d b64 ${amp:-fp32}" 70 1 images_per_s \
          "backbone bench $b --json" "$py $root/bench/train_step_timm.py $b"
      done ;;
  esac
done
note "total $(($(date +%s) - start)) s"
