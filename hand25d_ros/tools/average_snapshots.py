"""Average the network states at the end of training runs into one weights file (SWA-style).

    python -m hand25d_ros.tools.average_snapshots runs/stage3 [runs/other_run ...] \
        --from-step 2600 --out runs/stage3/averaged.pt

Late in a cosine schedule the states of a run wander about one basin of the loss, and
their mean sits nearer its middle (Izmailov et al., "Averaging Weights Leads to Wider
Optima", 2018); runs fine-tuned from the same weights can be averaged the same way. A
run's states are its ``snapshots/step_NNNNNN.pt`` (``train.snapshot_every``) and its
final ``last.pt``, those at or after ``--from-step`` taken. Averaged parameters need
their own batch-norm statistics: they are recomputed over training batches of the first
run's config (``torch.optim.swa_utils.update_bn``). The result is validated on the
config's held-out synthetic crops (and on real data when the config names it: measured
only), its crop head calibrated, and written with metadata that lists the states.

Weights files (``save_weights``'s, such as the shipped ones recovered from git) may stand
beside or instead of run folders: a lineage of fine-tunes lies in one basin too, and its
mean is a "model soup" (Wortsman et al., 2022). Without a run folder first, ``--config``
names the training config whose renders and validation crops are used.

    python -m hand25d_ros.tools.average_snapshots runs/w_c5b6c72.pt runs/w_40f9a98.pt \
        --config config/train/small_synth_soup25.yaml --out runs/soup25_22_24.pt
"""
from __future__ import annotations

import argparse
import itertools
import shlex
import sys
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from .. import train as tr
from .._checks import WHOLE_AT_LEAST_1, argparse_number, require_render_extra
from ..model import build_model_from_arch
from ..weights import save_weights


def run_states(run: Path, from_step: int) -> list[tuple[int, dict]]:
    """(step, network state) of a run's saved states at or after ``from_step``, one per step,
    by step. Only those are read (a snapshot's step is in its name)."""
    files = {}
    for f in (run / "snapshots").glob("step_*.pt"):
        try:
            files[int(f.stem.split("_")[1])] = f
        except ValueError:
            continue
    states = {s: _load_state(f)[1] for s, f in files.items() if s >= from_step}
    last = run / "last.pt"
    if last.is_file():
        step, state = _load_state(last)
        if step >= from_step:
            states.setdefault(step, state)
    return sorted(states.items(), key=lambda item: item[0])


def _load_state(path: Path) -> tuple[int, dict]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: name it
        raise SystemExit(f"average_snapshots: cannot read {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(blob, dict) or "model" not in blob or "step" not in blob:
        raise SystemExit(f"average_snapshots: {path} is not a training snapshot or checkpoint")
    return int(blob["step"]), blob["model"]


def weights_state(path: Path, arch: dict) -> dict:
    """The network state of a weights file (``save_weights``'s) for a network of ``arch``,
    checked as a fine-tune's ``init_weights`` is (a file trained behind an input blur needs
    ``arch`` to name it, or the average would ship without the filter)."""
    from ..weights import WeightsError
    try:
        return tr.init_weights_file(arch, path)
    except WeightsError as exc:
        raise SystemExit(f"average_snapshots: {exc}") from None


def average_states(states: list[dict]) -> dict:
    """Element-wise mean of floating-point entries; other entries (batch counters) from the last."""
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys:
            raise SystemExit("average_snapshots: the states hold different networks")
    out = {}
    for k in keys:
        if states[-1][k].is_floating_point():
            out[k] = torch.stack([s[k].float() for s in states]).mean(0).to(states[-1][k].dtype)
        else:
            out[k] = states[-1][k].clone()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path,
                    help="run folders of hand25d-train, or weights files (the first run folder's config "
                         "is used unless --config is given)")
    ap.add_argument("--config", type=Path,
                    help="training config for the batch-norm renders and validation (default: the first "
                         "run folder's config.yaml)")
    ap.add_argument("--from-step", type=argparse_number(int, 0, what="a step >= 0"), default=0,
                    help="average the states at or after this step")
    ap.add_argument("--out", type=Path, required=True, help="weights file to write")
    # at least one: with none, update_bn leaves every batch norm reset (mean 0, variance 1) and
    # the file written held a silently broken network
    ap.add_argument("--bn-batches", type=WHOLE_AT_LEAST_1, default=100,
                    help="training batches for the batch-norm statistics")
    ap.add_argument("--threads", type=WHOLE_AT_LEAST_1, default=1)
    args = ap.parse_args(argv)
    if args.out.is_dir():   # found only when the file is written, after all the work, leaving a .tmp beside it
        raise SystemExit(f"average_snapshots: --out {args.out} is a folder; give the weights file to write")
    # before any work: the batch norms are measured on renders and the crop head calibrated on them
    require_render_extra("average_snapshots")
    torch.set_num_threads(args.threads)
    if args.config is not None:
        cfg = tr.read_config(args.config)
        tr.check_config(cfg, str(args.config))
    else:
        cfg_path = args.runs[0] / "config.yaml"
        if not cfg_path.is_file():
            raise SystemExit(f"average_snapshots: {cfg_path} not found (not a hand25d-train run folder? "
                             "give --config with weights files)")
        cfg = yaml.safe_load(cfg_path.read_text())
    picked = []
    for src in args.runs:
        if src.is_file():   # a weights file is one state, whatever --from-step says
            picked.append((src, None, weights_state(src, cfg["arch"])))
        else:
            picked += [(src, step, state) for step, state in run_states(src, args.from_step)]
    if not picked:
        raise SystemExit(f"average_snapshots: no saved states at or after step {args.from_step} in "
                         + ", ".join(str(r) for r in args.runs))
    print("averaging " + ", ".join(r.name if s is None else f"{r.name}@{s}" for r, s, _ in picked), flush=True)
    arch = cfg["arch"]
    model = build_model_from_arch(arch)
    try:
        model.load_state_dict(average_states([state for _, _, state in picked]))
    except RuntimeError as exc:
        raise SystemExit(f"average_snapshots: the states do not fit arch {arch}: {str(exc)[:300]}") from None

    t = cfg["train"]
    crop = model.input_size
    from ..data.synthetic import CacheError
    try:
        # the batch norms are measured on the run's own renders: its cache, which another
        # renderer version or a damaged file makes unusable, says so in one line as hand25d-train does
        synth = tr.training_renders(cfg, crop)
    except CacheError as exc:
        raise SystemExit(f"average_snapshots: {exc}") from None
    view, sampler, bone_ratios = tr.training_data(cfg, synth, crop)
    loader = DataLoader(view, batch_size=t["batch_size"], sampler=sampler, num_workers=0, drop_last=True)
    images = (b["image"].float().div_(255.0) for b in itertools.islice(loader, args.bn_batches))
    torch.optim.swa_utils.update_bn(images, model)

    device = torch.device("cpu")
    recipe = {"command": "python -m hand25d_ros.tools.average_snapshots "
                         + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
              "config": cfg, "averaged": [{"run": str(r), "step": s} if s is not None else {"weights": str(r)}
                           for r, s, _ in picked],
              "bn_batches": args.bn_batches, "device": str(device)}
    meta = tr.weights_meta(model, tr.validation_data(cfg, crop), cfg, bone_ratios, device, recipe)
    print(tr.metrics_text(meta["metrics"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, args.out, arch, meta)
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
