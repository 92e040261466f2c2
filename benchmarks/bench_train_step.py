"""Training step time on the CPU, float32 against bfloat16 mixed precision (``train.cpu_bf16``).

    .venv/bin/python benchmarks/bench_train_step.py [--arch small] [--batch 64] [--threads 1]

One step is the network's forward with the crop head, a loss over all its outputs, backward
and an AdamW update, on random 128 px crops (data loading is not timed). Both memory layouts
are timed, since oneDNN's convolutions are fastest on channels-last tensors. Prints the
median seconds per step and whether this CPU has AMX (bfloat16 faster on every such CPU
measured) or AVX512-BF16 (slower on a Xeon, faster on an AMD EPYC; an AVX2-only CPU emulates it).
"""
from __future__ import annotations

import argparse

import torch

from hand25d_ros.model import build_model
from hand25d_ros.train import cpu_has_amx_bf16, cpu_has_avx512_bf16, train_step_time_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"arch {args.arch}, batch {args.batch}, {args.threads} thread(s), AMX bfloat16: {cpu_has_amx_bf16()}, "
          f"AVX512-BF16: {cpu_has_avx512_bf16()}")
    print(f"{'precision':>10s} {'layout':>14s} {'s/step':>7s}")
    for channels_last in (False, True):
        model = build_model(args.arch, crop_head=True).train()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.rand(args.batch, 3, model.input_size, model.input_size).contiguous(memory_format=fmt)
        for bf16 in (False, True):
            t = train_step_time_s(model, opt, x, bf16, warmup=2, runs=args.runs)
            print(f"{'bfloat16' if bf16 else 'float32':>10s} {'channels-last' if channels_last else 'contiguous':>14s} "
                  f"{t:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
