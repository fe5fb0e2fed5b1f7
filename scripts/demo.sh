#!/usr/bin/env bash
# The main job on built-in data, end to end, with the release binaries (`make demo`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
out=${DEMO_OUT:-$root/runs/demo}
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "ResNet-50-D and ResNet-50 (B): parameters and multiply-accumulates, counted from the modules"
"$bin/backbone" info --arch resnet50d
"$bin/backbone" info --arch resnet50

step "A freshly initialised ResNet-50-D (zero-gamma), its top-5 on a test image"
"$bin/backbone" init --arch resnet50d --zero-gamma "$out/resnet50d-init.safetensors"
"$bin/backbone" predict --ckpt "$out/resnet50d-init.safetensors" --image "$root/tests/fixtures/pytorch/scene.png"

step "Exported for timm (load_state_dict(strict=True) accepts it)"
"$bin/backbone" export --to timm "$out/resnet50d-init.safetensors" "$out/resnet50d-timm.safetensors"
echo "demo outputs in $out"
