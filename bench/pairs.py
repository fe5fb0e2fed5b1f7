"""Runs two benchmark commands in turn, A B A B ..., and gives their ratio pair by pair.

Each command must print one JSON object (its last line is read). For every field named, each
pair's ratio A/B is printed, then the median over the pairs: on a shared machine whose speed
drifts, a ratio taken within one pair holds where absolute numbers do not.

    python bench/pairs.py --pairs 3 --fields train_images_per_s,inference_images_per_s \
        --a "target/release/detect bench --design fpn --size 800/1333 --threads 2 --json" \
        --b "python bench/detect_torchvision.py --size 800/1333 --threads 2"
"""
import argparse
import json
import shlex
import statistics
import subprocess
import sys


def run(command):
    done = subprocess.run(shlex.split(command), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"`{command}` failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="the command whose speed is the numerator (ours)")
    p.add_argument("--b", required=True, help="the command it is compared with (the peer)")
    p.add_argument("--fields", required=True,
                   help="comma-separated JSON fields to compare; A:B renames (A's field, B's field)")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    a = p.parse_args()
    fields = [f.split(":") if ":" in f else [f, f] for f in a.fields.split(",")]
    ratios = {fa: [] for fa, _ in fields}
    for i in range(1, a.pairs + 1):
        ours, peer = run(a.a), run(a.b)
        cells = []
        for fa, fb in fields:
            r = ours[fa] / peer[fb]
            ratios[fa].append(r)
            cells.append(f"{fa} {ours[fa]:.4g} vs {peer[fb]:.4g} = {r:.3f}")
        print(f"pair {i}: " + "; ".join(cells), flush=True)
    summary = {fa: {"median": statistics.median(rs), "min": min(rs), "max": max(rs), "pairs": len(rs)}
               for fa, rs in ratios.items()}
    for fa, s in summary.items():
        print(f"{fa}: median ratio {s['median']:.3f} (min {s['min']:.3f}, max {s['max']:.3f}, {s['pairs']} pairs)")
    if a.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
