"""The `--amp` flag of the PyTorch peers, as the Rust benches take it: absent (fp32), `--amp` or
`--amp fp16` (float16 autocast with a GradScaler, CUDA) or `--amp bf16` (bfloat16 autocast on
the CPU or CUDA, no loss scaling), so each side of a pair computes in the same types; and
`flush_denormals`, which every Rust command does first.
"""
import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def add_amp_argument(parser):
    parser.add_argument("--amp", nargs="?", const="fp16", choices=sorted(DTYPES),
                        help="autocast type (--amp alone: fp16)")


def check(amp, device):
    """fp16 autocast is timed on CUDA only, as the Rust benches refuse it on the CPU."""
    if amp == "fp16" and device.type == "cpu":
        raise SystemExit("--amp fp16: float16 autocast is CUDA's; on the CPU time --amp bf16")


def autocast(amp, device):
    """`with autocast(a.amp, device):` around a forward pass and its loss."""
    return torch.autocast(device.type, dtype=DTYPES.get(amp, torch.float16), enabled=amp is not None)


def grad_scaler(amp):
    """Loss scaling for fp16 only: bf16 has fp32's range."""
    return torch.amp.GradScaler("cuda", enabled=amp == "fp16")


def report(amp):
    """What the JSON says, as the Rust benches write it: false, "fp16" or "bf16"."""
    return amp or False


def flush_denormals():
    """Denormal floats flushed to zero, as every Rust command sets it before its threads start:
    on an Intel Xeon torchvision's Faster R-CNN trains 6 times faster with it (docs/results.md,
    "Denormal floats"), so a peer without it would not time the same arithmetic."""
    torch.set_flush_denormal(True)
