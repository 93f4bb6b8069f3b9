#!/usr/bin/python3
"""Milliseconds per efcnet.evaluate call on a 256x256 triple, as JSON.

    PYTHONPATH=build/python python3 python/benchmarks/evaluate_bench.py [--repeats N]

The triple is the demo phantom (SPECT colour functional image) and an average fusion. Reported, all
measured in this run: evaluate on the colour arrays as read (the conversion to grey included),
evaluate on grey uint8 arrays, and the twelve efcnet.metrics functions called one by one on the
grey arrays (the baseline that evaluate's shared passes are compared with); then the same
evaluate calls in a second process that opted into efcnet.keep_freed_memory_for_reuse().
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

import efcnet


def milliseconds(call, repeats):
    call()  # warm-up: first-touch allocations, OpenCV's thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="call efcnet.keep_freed_memory_for_reuse() first (otherwise a second process does, for comparison)")
    args = parser.parse_args()
    if args.keep_freed_memory:
        efcnet.keep_freed_memory_for_reuse()

    anatomical, functional = efcnet.phantom(256, "spect")
    luma = np.round(functional @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    fused_grey = ((anatomical.astype(np.uint16) + luma) // 2).astype(np.uint8)
    fused = np.repeat(fused_grey[..., None], 3, axis=2)  # a colour array of the grey fusion
    a, b, f = anatomical, luma, fused_grey

    single = [getattr(efcnet.metrics, name) for name in ("EN", "SD", "SF", "AG")]
    triple = [getattr(efcnet.metrics, name) for name in ("MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR", "CC", "MSE")]

    def one_by_one():
        for metric in single:
            metric(f)
        for metric in triple:
            metric(a, b, f)

    report = {
        "size": "256x256",
        "repeats": args.repeats,
        "evaluate_colour": milliseconds(lambda: efcnet.evaluate(anatomical, functional, fused), args.repeats),
        "evaluate_grey": milliseconds(lambda: efcnet.evaluate(a, b, f), args.repeats),
        "twelve_metric_calls_grey": milliseconds(one_by_one, args.repeats),
    }
    report["speedup_evaluate_vs_twelve_calls"] = (
        report["twelve_metric_calls_grey"]["median_ms"] / report["evaluate_grey"]["median_ms"])
    if not args.keep_freed_memory:
        # The heap policy is for the whole process and cannot be undone: measured in another one.
        child = subprocess.run([sys.executable, __file__, "--repeats", str(args.repeats), "--keep-freed-memory"],
                               capture_output=True, text=True, check=True)
        kept = json.loads(child.stdout)
        report["with_keep_freed_memory_for_reuse"] = {k: kept[k] for k in ("evaluate_colour", "evaluate_grey")}
        report["speedup_keep_freed_memory"] = report["evaluate_grey"]["median_ms"] / kept["evaluate_grey"]["median_ms"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
