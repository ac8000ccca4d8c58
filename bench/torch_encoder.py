"""PyTorch CPU baseline for the image encoder: the same weights (model.safetensors), the same
forward pass as the test reference (tests/ml/reference.py), the same thread count.

usage: /usr/bin/python3 bench/torch_encoder.py MODEL_DIR [threads=2] [batches=1,8,32] [seconds=10]
"""
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ml"))
import reference  # noqa: E402


def main():
    d = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    batches = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "1,8,32").split(",")]
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    torch.set_num_threads(threads)
    family, cfg, w = reference.load_model(d)
    s = cfg["image_size"]
    print("| weights | batch | ms/image | images/s |\n|---|---|---|---|")
    for b in batches:
        x = torch.randn(b, 3, s, s)
        with torch.inference_mode():
            reference.forward(family, cfg, w, x)
            n, t0 = 0, time.perf_counter()
            while True:
                reference.forward(family, cfg, w, x)
                n += b
                el = time.perf_counter() - t0
                if el >= seconds:
                    break
        print(f"| f32 (PyTorch {torch.__version__}, {threads} threads) | {b} | {1000 * el / n:.1f} | {n / el:.2f} |",
              flush=True)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
