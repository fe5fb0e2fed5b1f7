"""The Python probe behind backbones/src/winograd.rs: one 3x3 convolution of an FCN ResNet-50
(batch 2, stride 1, padding = dilation) timed as oneDNN's direct convolution on a blocked
(`to_mkldnn`) input, and as Winograd's F(4x4, 3x3) with the same torch operations the Rust
code uses (blocked -> dense -> padded channels-last, 6x6 blocks gathered, (B^T x B^T) product,
36 batched matrix products, (A^T x A^T) product with the bias, back to NCHW and the blocked
layout), with the relative error of each against a float64 convolution.

    python bench/winograd_probe.py --threads 2
"""
import argparse
import time

import torch

BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
      [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
     [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
IN, OUT = 6, 4

# (in channels, out channels, dilation): the head, layer4 at output stride 8 and 16, layer3.
SHAPES = [(2048, 512, 1), (512, 512, 4), (512, 512, 2), (256, 256, 2)]


def transform_weight(w):
    g = torch.tensor(G, dtype=torch.float64)
    u = g @ w.double().reshape(-1, 3, 3) @ g.T
    return u.reshape(w.shape[0], w.shape[1], IN * IN).permute(2, 1, 0).float().contiguous()


def winograd(x_blocked, u, bias, d):
    x = x_blocked.to_dense()
    n, c, h, w = x.shape
    c_out = u.shape[2]
    bh, bw = -(-h // (OUT * d)), -(-w // (OUT * d))
    padded = torch.zeros(n, bh * OUT * d + 2 * d, bw * OUT * d + 2 * d, c)
    padded[:, d:d + h, d:d + w].copy_(x.permute(0, 2, 3, 1))
    s_n, s_h, s_w, s_c = padded.stride()
    tiles = n * bh * d * bw * d
    blocks = padded.as_strided((IN, IN, n, bh, d, bw, d, c),
                               (d * s_h, d * s_w, s_n, OUT * d * s_h, s_h, OUT * d * s_w, s_w, s_c))
    kb = torch.kron(torch.tensor(BT, dtype=torch.float32), torch.tensor(BT, dtype=torch.float32))
    ka = torch.kron(torch.tensor(AT, dtype=torch.float32), torch.tensor(AT, dtype=torch.float32))
    v = (kb @ blocks.reshape(IN * IN, tiles * c)).view(IN * IN, tiles, c)
    m = torch.bmm(v, u)
    y = (ka @ m.view(IN * IN, -1)).view(OUT, OUT, n, bh, d, bw, d, c_out)
    y.add_(bias)
    y = y.permute(2, 7, 3, 0, 4, 5, 1, 6).reshape(n, c_out, bh * OUT * d, bw * OUT * d)
    return y[:, :, :h, :w].contiguous().to_mkldnn()


def timed(f, reps):
    f()
    start = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - start) / reps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default="60,16", help="feature map sides (60: crop 480 at stride 8)")
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        for side in [int(s) for s in a.sizes.split(",")]:
            for c_in, c_out, d in SHAPES:
                x = torch.randn(2, c_in, side, side)
                w = torch.randn(c_out, c_in, 3, 3) * (2 / (9 * c_in)) ** 0.5
                b = torch.randn(c_out)
                blocked = x.to_mkldnn()
                u = transform_weight(w)
                direct = timed(lambda: torch.nn.functional.conv2d(blocked, w, b, 1, d, d), a.reps)
                fast = timed(lambda: winograd(blocked, u, b, d), a.reps)
                ref = torch.nn.functional.conv2d(x.double(), w.double(), b.double(), 1, d, d)
                err = lambda y: ((y.to_dense().double() - ref).norm() / ref.norm()).item()
                print(f"{c_in:4d} -> {c_out:3d}, dilation {d}, {side}x{side}: oneDNN {direct * 1e3:7.1f} ms "
                      f"(error {err(torch.nn.functional.conv2d(blocked, w, b, 1, d, d)):.1e}), "
                      f"F(4x4,3x3) {fast * 1e3:7.1f} ms (error {err(winograd(blocked, u, b, d)):.1e}), "
                      f"speed {direct / fast:.2f}x", flush=True)


if __name__ == "__main__":
    main()
