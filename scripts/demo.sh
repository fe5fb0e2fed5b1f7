#!/usr/bin/env bash
# `make demo`: the main job on built-in data, end to end, with the release binaries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$root/target/release
out=${DEMO_OUT:-$root/runs/demo}
fm=$(cat "$root/target/fashion-mnist-dir")
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "ResNet-50-D and ResNet-50 (B): parameters and multiply-accumulates, counted from the modules"
"$bin/backbone" info --arch resnet50d
"$bin/backbone" info --arch resnet50

step "Train ResNet-18-D on Fashion-MNIST with the paper's refinements (configs/backbone/fashion-quick.toml)"
rm -rf "$out/fashion-quick"
"$bin/backbone" train --config configs/backbone/fashion-quick.toml --data "fashion-mnist:$fm" \
  --out "$out/fashion-quick"

step "Evaluate the best checkpoint on the Fashion-MNIST test set"
"$bin/backbone" eval --ckpt "$out/fashion-quick/best.safetensors" --data "fashion-mnist:$fm"

step "Export it for timm (load_state_dict(strict=True) accepts it)"
"$bin/backbone" export --to timm "$out/fashion-quick/best.safetensors" "$out/fashion-quick/resnet18d-timm.safetensors"

step "Fashion scenes for detection and segmentation (VOC, ADE20K and COCO layouts), and a preview"
rm -rf "$out/scenes"
"$bin/datasets" synth --out "$out/scenes" --train 200 --val 50 --test 50 --preview 8
"$bin/datasets" check "voc:$out/scenes/VOCdevkit"
echo
echo "demo outputs in $out (training curves: $out/fashion-quick/curves.png)"
