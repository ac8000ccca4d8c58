#!/usr/bin/python3
"""Paired timing of two lumen binaries on one command: A B A B ..., the median of each and of the
per-pair ratios B/A (these machines are noisy; pairs cancel most of the drift).

    N=10 bench/paired.py OLD_LUMEN NEW_LUMEN ARGS...   (e.g. convert in.jpg -o /tmp/o --chain svg)
    N=6 bench/paired.py --jobs LUMEN ARGS...          (one binary: ARGS -j 1 as A, -j 0 as B)

An `-o DIR` in ARGS is emptied before every run."""
import os
import shutil
import statistics
import subprocess
import sys
import time


def main():
    if sys.argv[1] == "--jobs":
        binary, args = sys.argv[2], sys.argv[3:]
        a, b = [binary, *args, "-j", "1"], [binary, *args, "-j", "0"]
    else:
        a, b = [sys.argv[1], *sys.argv[3:]], [sys.argv[2], *sys.argv[3:]]
        args = sys.argv[3:]
    n = int(os.environ.get("N", "10"))
    out = args[args.index("-o") + 1] if "-o" in args else None

    def once(command):
        if out:
            shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t

    once(a), once(b)  # warm the page cache
    ta, tb = [], []
    for _ in range(n):
        ta.append(once(a))
        tb.append(once(b))
    ratio = statistics.median(y / x for x, y in zip(ta, tb))
    lo, hi = min(y / x for x, y in zip(ta, tb)), max(y / x for x, y in zip(ta, tb))
    print(f"A median {statistics.median(ta):.3f} s (min {min(ta):.3f}) | "
          f"B median {statistics.median(tb):.3f} s (min {min(tb):.3f}) | "
          f"B/A median of pairs {ratio:.3f} ({lo:.2f}-{hi:.2f})")


if __name__ == "__main__":
    main()
