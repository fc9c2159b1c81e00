"""The figures of one scripts/gpu_check.sh run, against issue 3's H200 targets, as lines for the README.

Usage: python scripts/gpu_check_summary.py OUT_DIR   (the folder gpu_check.sh wrote)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET_SECONDS = 10.0  # grad_norm of ResNet18 over all 50,000 CIFAR-10 images
TARGET_VS_NAIVE = 50.0
TARGET_TRAIN_SPS = 30000.0  # ResNet18 training on CIFAR-10, images/s
TARGET_EPOCH_SECONDS = 2.0  # one epoch of all 50,000


def load(out: Path, name: str) -> dict | None:
    path = out / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def scores_lines(name: str, result: dict | None) -> list[str]:
    if result is None:
        return [f"{name}: no result (see {name}.log)"]
    tiled = f", tiled from {result['tiled_from']}" if result.get("tiled_from") else ""
    lines = [(f"{name}: {result['model']} on {result['dataset']}, {result['samples']} samples{tiled}, batch "
             f"{result['batch_size']}, {result['device']}; one training epoch {result['train_epoch_seconds']} s")]
    for scorer, r in result["scorers"].items():
        extra = "".join(f", {key} {r[key]}" for key in ("speedup_vs_naive", "speedup_vs_vmap") if key in r)
        lines.append(f"  {scorer}: {r['seconds']} s, {r['epochs_equivalent']} epochs{extra}")
    lines.append(f"  all four in one pass: {result['all_scorers_epochs_equivalent']} epochs")
    return lines


def main(out: Path) -> int:
    lines = [(out / "steps.txt").read_text().strip() if (out / "steps.txt").exists() else "no steps ran"]
    exact_log = out / "exact.log"
    exact = exact_log.read_text().strip().splitlines()[-1] if exact_log.exists() and exact_log.read_text().strip() else "none"
    lines.append(f"exactness tests: {exact}")
    resnet = load(out, "resnet18")
    lines += scores_lines("resnet18", resnet)
    if resnet is not None and resnet["samples"] >= 50000:
        grad = resnet["scorers"]["grad_norm"]
        lines.append(f"  target grad_norm <= {TARGET_SECONDS:g} s: {grad['seconds']} s, "
                     f"{'met' if grad['seconds'] <= TARGET_SECONDS else 'MISSED'}")
        lines.append(f"  target >= {TARGET_VS_NAIVE:g}x naive: {grad['speedup_vs_naive']}x, "
                     f"{'met' if grad['speedup_vs_naive'] >= TARGET_VS_NAIVE else 'MISSED'}")
    lines += scores_lines("mnist", load(out, "mnist"))
    for name in ("train-mnist", "train-cifar", "train-cifar-compiled"):
        r = load(out, name)
        if r is None:
            lines.append(f"{name}: no result (see {name}.log)")
            continue
        sps = r["ours"]["samples_per_second"]
        lines.append(f"{name}: {r['model']} batch {r['batch_size']} on {r['device']}, compile "
                     f"{r['ours'].get('compile', False)} (warm-up {r['ours'].get('warm_up_seconds')} s): prunelab "
                     f"{sps:,.0f} samples/s, DataLoader loop {r['baseline']['samples_per_second']:,.0f} samples/s, "
                     f"{r['ratio']}x")
        if r["model"] == "resnet18" and r["device"].startswith("cuda"):
            epoch = 50000 / sps
            lines.append(f"  targets >= {TARGET_TRAIN_SPS:,.0f} images/s and a 50,000-image epoch <= "
                         f"{TARGET_EPOCH_SECONDS:g} s: {sps:,.0f}/s, {epoch:.2f} s, "
                         f"{'met' if sps >= TARGET_TRAIN_SPS and epoch <= TARGET_EPOCH_SECONDS else 'MISSED'}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
