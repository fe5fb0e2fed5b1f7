# The front door. `make demo` and `make test` do their own set-up (scripts/setup.sh: libtorch
# 2.11 from the PyPI wheel in a shared cache folder, Fashion-MNIST), so a fresh clone needs
# nothing else.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: setup build test demo bench fmt lint
setup:
	@scripts/setup.sh

build: setup
	cargo build --release --workspace --bins

test: setup
	cargo build --workspace --bins
	cargo test --workspace

# The transfer tables' demo profile: two rows (B-standard and D with every refinement) through
# backbone, Faster R-CNN and FCN, on CUDA when the machine has a GPU.
DEMO_DEVICE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
demo: build
	scripts/transfer_tables.sh --profile demo --device $(DEMO_DEVICE) --out runs/demo

bench: build
	scripts/bench.sh

fmt:
	cargo fmt --all

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
