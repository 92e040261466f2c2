"""hand25d-train-detector: train the full-frame hand detector on synthetic composites.

    hand25d-train-detector --out runs/detector --minutes 20

Renders a cutout bank on first use (``cache/det_bank.npz``), trains on scenes composed
on the fly (0-3 hands, distractors, any aspect ratio, letterboxed as at inference),
checkpoints ``last.pt`` atomically (re-run the same command to resume) and ends with
``detector.pt``: the weights, their recipe and the score threshold that keeps false
hands under 1% of held-out empty scenes, with precision and recall at that threshold.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ._checks import POSITIVE_NUMBER, WHOLE_AT_LEAST_1, WHOLE_NON_NEGATIVE, argparse_number, require_render_extra
from .data.composites import background_pool, composite_scene, render_cutouts
from .detector import STRIDE, HandDetector, HandDetectorNet, detector_loss, load_detector, make_targets, save_detector
from .train import changed_settings, cut_log
from .weights import WeightsError, read_checkpoint

ASPECTS = ((4, 3), (16, 9), (1, 1), (3, 4))


class SceneDataset(Dataset):
    """Letterboxed composite scenes with CenterNet targets; sample ``i`` depends on (seed, epoch, i)."""

    def __init__(self, bank: dict, input_size: int, seed: int, pool=None, length: int = 1_000_000):
        self.bank, self.S, self.seed, self.length, self.epoch = bank, input_size, seed, length, 0
        self.pool = pool

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        a, b = ASPECTS[int(rng.integers(len(ASPECTS)))]
        w, h = (self.S, round(self.S * b / a)) if a >= b else (round(self.S * a / b), self.S)
        image, hands = composite_scene(rng, self.bank, w, h, pool=self.pool)
        canvas = np.zeros((self.S, self.S, 3), np.uint8)
        canvas[:h, :w] = image
        heat, reg, mask = make_targets(
            [(x["box"][0] + x["box"][2] / 2, x["box"][1] + x["box"][3] / 2, x["box"][2], x["is_left"])
             for x in hands], self.S)
        return {"image": torch.from_numpy(canvas).permute(2, 0, 1), "heat": torch.from_numpy(heat),
                "reg": torch.from_numpy(reg), "mask": torch.from_numpy(mask)}


def match(dets, hands, max_centre_frac: float = 0.5, max_size_ratio: float = 2.0):
    """Greedy matching of detections (best first) to true hands: centre within
    ``max_centre_frac`` of the true side and side within a factor ``max_size_ratio``.
    Returns (true positives, false positives, missed, [(det, hand) pairs])."""
    free = list(range(len(hands)))
    pairs, fp = [], 0
    for d in dets:
        best, best_d = None, None
        for j in free:
            x, y, s, _ = hands[j]["box"]
            c = np.array([x + s / 2, y + s / 2])
            dist = float(np.linalg.norm(d.centre - c))
            ratio = max(d.box[2] / s, s / max(d.box[2], 1e-9))
            if dist <= max_centre_frac * s and ratio <= max_size_ratio and (best_d is None or dist < best_d):
                best, best_d = j, dist
        if best is None:
            fp += 1
        else:
            free.remove(best)
            pairs.append((d, hands[best]))
    return len(pairs), fp, len(free), pairs


def scene_benchmark(find, bank: dict, n_per_count: int = 200, seed: int = 4242,
                    size=(640, 480), counts=(0, 1, 2), max_hands: int = 2) -> dict:
    """Precision, recall, false-hand rate on empty frames and left/right accuracy on composite
    scenes with each number of hands in ``counts`` (a fixed held-out seed).

    ``find(image, max_hands)`` returns Detection-like objects (``box``, ``centre``, ``is_left``):
    the detector itself, or the whole pipeline wrapped. A figure over nothing (precision
    without a detection, left/right without a found hand, any of them without hands) is None."""
    rows = {}
    for n in counts:
        tp = fp = fn = frames_with_fp = side_ok = 0
        for i in range(n_per_count):
            rng = np.random.default_rng((seed, n, i))
            image, hands = composite_scene(rng, bank, size[0], size[1], n_hands=n,
                                           side_range_frac=(0.08, 0.7))
            dets = find(image, max_hands=max_hands)
            a, b, c, pairs = match(dets, hands)
            tp, fp, fn = tp + a, fp + b, fn + c
            frames_with_fp += b > 0
            side_ok += sum(d.is_left is not None and d.is_left == h["is_left"] for d, h in pairs)
        rows[n] = {"frames": n_per_count, "hands": tp + fn, "tp": tp, "fp": fp, "fn": fn,
                   # over no detection (precision) or no found hand (left/right): undefined
                   "precision": tp / (tp + fp) if n and tp + fp else None,
                   "recall": tp / max(tp + fn, 1) if n else None,
                   "frames_with_false_hand": frames_with_fp / n_per_count,
                   "left_right_accuracy": side_ok / tp if n and tp else None}
    return rows


def calibrate_threshold(detector: HandDetector, bank: dict, n_empty: int = 300, seed: int = 777,
                        max_false_rate: float = 0.01, floor: float = 0.2) -> float:
    """The lowest score threshold (not under ``floor``) at which at most ``max_false_rate``
    of held-out empty scenes show a hand."""
    keep = detector.score_threshold
    detector.score_threshold = 0.0
    best = []
    for i in range(n_empty):
        rng = np.random.default_rng((seed, i))
        a, b = ASPECTS[i % len(ASPECTS)]
        image, _ = composite_scene(rng, bank, 640 if a >= b else 480, 480 if a >= b else 640, n_hands=0)
        dets = detector(image, max_hands=1)
        best.append(dets[0].score if dets else 0.0)
    detector.score_threshold = keep
    q = float(np.quantile(best, 1.0 - max_false_rate))
    return max(floor, min(0.9, q + 1e-3))


# the settings a resumed run must keep (the time budget, workers, threads and checkpoint
# interval may change): others would train its rest on another recipe than detector.pt records
DEFAULT_INPUT_SIZE = 160
RUN_SETTINGS = ("input_size", "batch_size", "lr", "seed", "cutouts", "bank_seed", "backgrounds", "init")


def run_settings(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in ((k, getattr(args, k)) for k in RUN_SETTINGS)}


def resume_state(ckpt: Path, args) -> dict | None:
    """``ckpt``'s training state, None when there is none; WeightsError naming the file when it
    cannot be read, SystemExit naming the settings that differ from the run's."""
    if not ckpt.exists():
        return None
    st = read_checkpoint(ckpt, ("model", "opt", "step", "wall_s", "epoch"), "detector")
    # checkpoints from before the settings were stored still carry their input size
    before = {"input_size": st["input_size"], **(st.get("settings") or {})} if "input_size" in st \
        else st.get("settings") or {}
    # not given: --init (its file's size) and --input-size (the run's, or its init's) take the run's
    now = {k: v for k, v in run_settings(args).items() if not (k in ("init", "input_size") and v is None)}
    diff = changed_settings(before, now, name=lambda k: "--" + k.replace("_", "-"))
    if diff:
        raise SystemExit(f"{ckpt.parent} holds a run started with other settings ({diff}); resume it with the "
                         "same ones (only --minutes, workers, threads and --checkpoint-every may change), "
                         "or use another --out")
    return st


def train(args, command: str) -> Path:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "last.pt"
    st = resume_state(ckpt, args)
    if st is not None:
        # the checkpoint carries its input size, so a resume needs neither --init nor its file
        args.input_size = st.get("input_size") or args.input_size or DEFAULT_INPUT_SIZE
        model = HandDetectorNet(input_size=args.input_size)
        try:   # before the bank renders: hand25d-train's last.pt has the keys a detector's has
            model.load_state_dict(st["model"])
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise WeightsError(f"cannot resume from {ckpt}: it does not hold a hand detector's network "
                               f"({' '.join(str(exc).split())[:200]}...); a hand25d-train run folder? "
                               "use another --out") from None
    elif args.init is not None:
        # fine-tuning a shipped detector: its weights and input size, a fresh optimiser and
        # schedule; loaded before the bank renders so that a bad file fails at once
        model, init_meta = load_detector(args.init)
        if args.input_size not in (None, model.input_size):
            # the network is fully convolutional: its weights serve any input size. Overridden
            # by the file's, an explicit --input-size was dropped without a word, and the same
            # command then refused to resume (--input-size: 160 -> 192)
            init_model, model = model, HandDetectorNet(input_size=args.input_size)
            model.load_state_dict(init_model.state_dict())
        args.input_size = model.input_size
        model.train()
        print(f"starting from {args.init} (input {args.input_size} px, "
              f"{init_meta.get('recipe', {}).get('steps', '?')} steps before)", flush=True)
    else:
        args.input_size = args.input_size or DEFAULT_INPUT_SIZE
        model = HandDetectorNet(input_size=args.input_size)
    bank = render_cutouts(args.bank, args.cutouts, seed=args.bank_seed, workers=args.render_workers)
    # The default layout, not channels-last as hand25d-train uses on a CPU: the backward pass of the
    # first 1x1 stride-2 projection (12 input channels) crashes oneDNN in channels-last (torch 2.13,
    # AVX512 Xeon; uxlfoundation/oneDNN#6035: input channels below the kernel's block).
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, wall, epoch = 0, 0.0, 0
    if st is not None:
        opt.load_state_dict(st["opt"])
        step, wall, epoch = st["step"], st["wall_s"], st["epoch"] + 1
        print(f"resumed from {ckpt} at step {step}", flush=True)
    budget_s = 60.0 * args.minutes
    pool = background_pool(args.backgrounds, 192, args.seed) if args.backgrounds else None
    data = SceneDataset(bank, args.input_size, args.seed, pool)
    cut_log(out / "log.csv", step)     # rows after the checkpoint are logged again
    log_f = open(out / "log.csv", "a", newline="")
    log = csv.writer(log_f)
    if log_f.tell() == 0:
        log.writerow(["step", "wall_s", "lr", "loss", "focal", "size", "offset", "side"])

    def save():
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "wall_s": wall, "epoch": epoch, "input_size": args.input_size,
                    "settings": run_settings(args)}, tmp)
        os.replace(tmp, ckpt)

    try:
        from tqdm import tqdm
        bar = tqdm(total=int(budget_s), initial=int(wall), unit="s", desc="training detector")
    except ImportError:                                   # pragma: no cover
        bar = None
    model.train()
    running = []
    while wall < budget_s:
        data.epoch = epoch
        loader = DataLoader(data, batch_size=args.batch_size, num_workers=args.workers,
                            sampler=range(step * args.batch_size, 10 ** 9), drop_last=True)
        t0 = time.time()
        for batch in loader:
            if wall >= budget_s:
                break
            frac = min(1.0, wall / budget_s)
            lr = args.lr * min(1.0, (step + 1) / 100) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            x = batch["image"].float().div_(255.0)
            loss, terms = detector_loss(model(x), batch["heat"], batch["reg"], batch["mask"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            now = time.time()
            if bar:
                bar.update(int(wall + now - t0) - int(wall))
            wall += now - t0
            t0 = now
            running.append([loss.item()] + [v.item() for v in terms.values()])
            if step % 25 == 0:
                m = np.mean(running, 0)
                running = []
                log.writerow([step, round(wall, 1), lr, *np.round(m, 4)])
                log_f.flush()
                if bar:
                    bar.set_postfix(loss=f"{m[0]:.3f}", step=step)
            if step % args.checkpoint_every == 0:
                save()
        epoch += 1
    save()
    if bar:
        bar.close()
    log_f.close()
    model.eval()
    path = out / "detector.pt"
    arch = {"input_size": args.input_size}
    # calibrated from a side file: detector.pt appears only whole, threshold and recipe in it
    uncalibrated = out / "detector.uncalibrated.pt"
    save_detector(model, uncalibrated, arch, {"score_threshold": 0.3})
    det = HandDetector(uncalibrated)
    thr = calibrate_threshold(det, bank, n_empty=args.calibration_scenes)
    det.score_threshold = thr
    val_bank = render_cutouts(args.val_bank, args.val_cutouts, seed=args.bank_seed + 1, workers=args.render_workers)
    scenes = scene_benchmark(det, val_bank, n_per_count=args.val_scenes)
    meta = {"score_threshold": thr, "scene_benchmark": {str(k): v for k, v in scenes.items()},
            "recipe": {"command": command, "steps": step, "train_wall_s": round(wall, 1),
                       "cutouts": args.cutouts, "backgrounds": args.backgrounds, "bank_seed": args.bank_seed, "seed": args.seed,
                       "batch_size": args.batch_size, "lr": args.lr, "torch": str(torch.__version__),
                       "init": str(args.init) if args.init else None}}
    save_detector(model, path, arch, meta)
    uncalibrated.unlink(missing_ok=True)
    print(f"wrote {path}: score threshold {thr:.3f}", flush=True)
    for k, v in scenes.items():
        print(f"  {k} hands: {v}", flush=True)
    return path


def input_size_px(text: str) -> int:
    """A detector input size: a multiple of its output stride (the targets' grid is
    ``input_size / STRIDE`` cells, and the network's output has as many only then)."""
    v = argparse_number(int, 4 * STRIDE, what=f"a multiple of {STRIDE} >= {4 * STRIDE}")(text)
    if v % STRIDE:
        raise argparse.ArgumentTypeError(f"expected a multiple of {STRIDE} >= {4 * STRIDE}, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hand25d-train-detector", description=__doc__.split("\n\n")[0])
    # numbers checked as argparse reads them: a bad one otherwise failed with a traceback after the
    # cutout bank had rendered (--checkpoint-every 0, --input-size 100, --workers -1, --lr nan) or,
    # with --val-scenes 0, after the whole training, before detector.pt was written
    ap.add_argument("--out", type=Path, required=True, help="run folder (re-run to resume)")
    ap.add_argument("--minutes", type=POSITIVE_NUMBER, default=20.0, help="training time budget")
    ap.add_argument("--bank", type=Path, default=Path("cache/det_bank.npz"))
    ap.add_argument("--val-bank", type=Path, default=Path("cache/det_bank_val.npz"))
    ap.add_argument("--cutouts", type=WHOLE_AT_LEAST_1, default=12000)
    ap.add_argument("--bank-seed", type=WHOLE_NON_NEGATIVE, default=7000)
    ap.add_argument("--backgrounds", type=WHOLE_NON_NEGATIVE, default=2000,
                    help="pre-rendered backgrounds the training scenes crop from (0: a new one per scene)")
    ap.add_argument("--input-size", type=input_size_px, default=None,
                    help=f"detector input (px; default {DEFAULT_INPUT_SIZE}, or the --init detector's)")
    ap.add_argument("--batch-size", type=WHOLE_AT_LEAST_1, default=32)
    ap.add_argument("--lr", type=POSITIVE_NUMBER, default=2e-3)
    ap.add_argument("--seed", type=WHOLE_NON_NEGATIVE, default=0)
    ap.add_argument("--workers", type=WHOLE_NON_NEGATIVE, default=1, help="DataLoader workers composing scenes")
    ap.add_argument("--render-workers", type=WHOLE_NON_NEGATIVE, default=2)
    ap.add_argument("--threads", type=WHOLE_NON_NEGATIVE, default=0, help="torch threads (0: default)")
    ap.add_argument("--checkpoint-every", type=WHOLE_AT_LEAST_1, default=200)
    ap.add_argument("--val-scenes", type=WHOLE_AT_LEAST_1, default=200, help="held-out scenes per hand count")
    ap.add_argument("--val-cutouts", type=WHOLE_AT_LEAST_1, default=400, help="held-out cutouts the benchmark scenes use")
    ap.add_argument("--calibration-scenes", type=WHOLE_AT_LEAST_1, default=300,
                    help="held-out empty scenes that set the score threshold")
    ap.add_argument("--init", type=Path, default=None,
                    help="detector weights to start from (e.g. the bundled hand_detector.pt); ignored "
                         "when the run folder has a checkpoint to resume")
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    # before any work: the cutout bank's render would fail in its workers, after making --out
    require_render_extra("hand25d-train-detector")
    command = "hand25d-train-detector " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    from ._signals import interrupt_on_termination
    from .weights import WeightsError
    interrupt_on_termination()   # as hand25d-train: its render workers end with it
    try:
        train(args, command)
    except WeightsError as exc:
        raise SystemExit(f"hand25d-train-detector: {exc}") from None
    except OSError as exc:      # a read-only or full disk, a file where a folder goes
        raise SystemExit(f"hand25d-train-detector: {exc.strerror or exc}: {exc.filename or args.out}") from None
    except KeyboardInterrupt:
        if (args.out / "last.pt").is_file():
            print(f"hand25d-train-detector: interrupted; the same command resumes from {args.out / 'last.pt'}",
                  file=sys.stderr)
        else:   # in the cutout bank's render (written whole, at its end) or the first steps
            print("hand25d-train-detector: interrupted before its first checkpoint; the same command "
                  "starts the run over", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
