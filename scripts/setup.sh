#!/usr/bin/env bash
# One-time, idempotent set-up for building and testing on a fresh machine:
#   1. libtorch 2.11.0: $LIBTORCH if the user has one, otherwise the PyPI wheel torch==2.11.0
#      installed into a virtual environment kept outside the clone (shared by every clone);
#   2. .cargo/config.toml pointing cargo at it, so plain `cargo build` / `cargo test` work;
#   3. Fashion-MNIST: Debian's dataset-fashion-mnist, else a checksummed download;
#   4. Gloo's headers (Debian's libgloo-dev), which the c10d shim of crate `distributed` needs.
# Re-running it does nothing that is already done.
set -euo pipefail
TORCH_VERSION=2.11.0
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TRICKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tricks}
say() { echo "setup: $*" >&2; }

# --- 1. libtorch -----------------------------------------------------------------------------
if [ -n "${LIBTORCH:-}" ]; then
  [ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || { say "LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so"; exit 2; }
  libtorch=$LIBTORCH
else
  venv=$cache/torch-$TORCH_VERSION/venv
  if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    say "installing torch==$TORCH_VERSION (libtorch) into $venv; about 4.6 GB, a few minutes, once"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
  fi
  libtorch=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)
fi
# The wheel says which C++ ABI it was built with; a user's own libtorch may say so in the env.
cxx11=${LIBTORCH_CXX11_ABI:-1}
[ -n "${venv:-}" ] && cxx11=$("$venv/bin/python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null)

mkdir -p "$root/.cargo"
config="$root/.cargo/config.toml"
want=$(cat <<CFG
# Written by scripts/setup.sh (git-ignored): where libtorch $TORCH_VERSION lives on this machine.
[env]
LIBTORCH = "$libtorch"
LIBTORCH_CXX11_ABI = "$cxx11"
CFG
)
if [ "$(cat "$config" 2>/dev/null)" != "$want" ]; then
  printf '%s\n' "$want" > "$config"
  say "wrote $config (LIBTORCH=$libtorch)"
fi

# --- 2. Fashion-MNIST ------------------------------------------------------------------------
fm=/usr/share/datasets/fashion-mnist
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
have_fm() { for f in $files; do [ -s "$1/$f.gz" ] || return 1; done; }
if ! have_fm "$fm" && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "installing Debian's dataset-fashion-mnist"
  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
    || say "apt-get could not install dataset-fashion-mnist; downloading instead"
fi
if ! have_fm "$fm"; then
  fm=$cache/fashion-mnist
  if ! have_fm "$fm"; then
    mkdir -p "$fm"
    # sha256 of the *decompressed* files, so any re-compression of the same data is accepted.
    declare -A sum=(
      [train-images-idx3-ubyte]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
      [train-labels-idx1-ubyte]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
      [t10k-images-idx3-ubyte]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
      [t10k-labels-idx1-ubyte]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
    )
    base=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com
    for f in $files; do
      say "downloading $f.gz"
      curl -fsSL "$base/$f.gz" -o "$fm/$f.gz.part"
      got=$(gzip -dc "$fm/$f.gz.part" | sha256sum | cut -d' ' -f1)
      [ "$got" = "${sum[$f]}" ] || { say "checksum mismatch for $f.gz"; rm -f "$fm/$f.gz.part"; exit 1; }
      mv "$fm/$f.gz.part" "$fm/$f.gz"
    done
  fi
fi
mkdir -p "$root/target"
printf '%s\n' "$fm" > "$root/target/fashion-mnist-dir"

# --- 3. Gloo headers for the c10d shim ----------------------------------------------------------
# The torch wheel ships libtorch's Gloo code but not Gloo's headers, which c10d's
# ProcessGroupGloo.hpp includes; Debian packages them.
if [ ! -f "${GLOO_INCLUDE:-/usr/include}/gloo/config.h" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing Debian's libgloo-dev (Gloo headers for the distributed crate)"
    (apt-get install -y -qq libgloo-dev >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libgloo-dev >/dev/null 2>&1; }) \
      || { say "apt-get could not install libgloo-dev; install it (or set GLOO_INCLUDE to a folder holding gloo/) and run this again"; exit 1; }
  else
    say "the Gloo headers are missing: run 'sudo apt-get install libgloo-dev' (Debian/Ubuntu), or set GLOO_INCLUDE to a folder holding gloo/, then run this again"
    exit 1
  fi
fi
