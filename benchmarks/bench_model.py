"""Model forward benchmark: latency (batch 1), throughput (best batch), params, FLOPs.

    .venv/bin/python benchmarks/bench_model.py [--arch small] [--weights PATH] [--threads N]

CPU always; CUDA in fp32 and fp16 when a GPU is present. Prints a table.
"""
from __future__ import annotations

import argparse
import platform

import torch
from torch.utils.flop_counter import FlopCounterMode

from hand25d_ros.model import build_model
from hand25d_ros.timing import median_time_s
from hand25d_ros.weights import load_weights


def bench(model, device, size, dtype, batches, runs):
    model = model.to(device=device, dtype=dtype).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    with torch.inference_mode():
        for b in batches:
            x = torch.rand(b, 3, size, size, device=device, dtype=dtype)
            t = median_time_s(lambda: model(x), sync=sync, warmup=10 if b == 1 else 3, runs=runs if b == 1 else max(5, runs // 10))
            rows.append((b, t * 1e3, b / t))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="small")
    ap.add_argument("--weights", default=None, help="benchmark this weights file's network instead")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_weights(args.weights).model if args.weights else build_model(args.arch)
    size = model.input_size
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(torch.rand(1, 3, size, size))
    flops = fc.get_total_flops()
    print(f"model: {args.weights or args.arch}, input {size}x{size}, {params / 1e6:.2f} M parameters, "
          f"{flops / 1e9:.3f} GFLOPs per crop (multiply-add = 2 FLOPs)")
    print(f"cpu: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| device | dtype | batch | latency ms (median) | crops/s |")
    print("|---|---|---|---|---|")
    for b, ms, tp in bench(model, torch.device("cpu"), size, torch.float32, [1, 4, 16, 64], args.runs):
        print(f"| cpu | fp32 | {b} | {ms:.2f} | {tp:.0f} |")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        for dtype, tag in ((torch.float32, "fp32"), (torch.float16, "fp16")):
            for b, ms, tp in bench(model, torch.device("cuda"), size, dtype, [1, 64, 256, 1024], args.runs):
                print(f"| {name} | {tag} | {b} | {ms:.2f} | {tp:.0f} |")
    else:
        print("(no CUDA device: GPU figures not measured)")


if __name__ == "__main__":
    main()
