"""hand25d-train: train the latent 2.5D network, with checkpoints and resume.

    hand25d-train --config config/train/small_synth.yaml --out runs/small_synth

The config (YAML) names the model size, the data sources and the optimisation;
command-line ``--set key=value`` overrides any entry (dotted keys). A run folder
holds ``config.yaml``, ``log.csv``, ``last.pt`` (full training state, written
atomically every ``checkpoint_every`` steps) and, at the end, ``weights.pt``
(the shippable weights file with its metadata). Re-running the same command
resumes from ``last.pt``. With ``train.snapshot_every`` the network's state is also
kept in ``snapshots/`` for ``python -m hand25d_ros.tools.average_snapshots``.
"""
from __future__ import annotations

import argparse
import copy
import csv
import functools
import math
import os
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

from . import geometry as geo
from . import keypoints as kp
from ._checks import require_render_extra
from .augment import AugmentConfig, augment_sample
from .losses import latent25d_loss
from .model import build_model_from_arch
from .timing import median_time_s
from .weights import save_weights

DEFAULT_CONFIG: dict = {
    "arch": {"name": "small"},
    "data": {
        # synthetic shards: rendered on first use (resumable), then read from disk
        "synthetic": {"cache_dir": "cache/synth128", "num_samples": 100000, "seed": 0,
                      "shard_size": 2048, "render_workers": 2, "config": {}},
        # extra sources: [{"type": "freihand"|"rhd"|"stb"|"folder", "root": ..., "weight": ...,
        # "split": ...}] (split: default the dataset's training split; README, Training)
        "extra": [],
        "synthetic_weight": 1.0,
        "val_synthetic": {"cache_dir": "cache/synth128_val", "num_samples": 1000, "seed": 999},
        "augment": {},
        # fraction of hand-free crops (trains the crop head's hand-present logit; needs
        # arch.crop_head), drawn from this many pre-rendered backgrounds
        "p_negative": 0.0,
        "negative_backgrounds": 1000,
    },
    "train": {"batch_size": 64, "max_steps": 8000, "lr": 2e-3, "weight_decay": 1e-4,
              "warmup_steps": 300, "lambda_z": 1.0, "lambda_side": 0.1, "lambda_hand": 0.1, "num_workers": 1, "seed": 0,
              "checkpoint_every": 250, "val_every": 1000, "log_every": 25, "amp": True,
              # on a CPU, run the network's convolutions in bfloat16 (autocast; weights and
              # the optimiser stay float32). About 2.6x the steps per second on a CPU with
              # AMX, ~10x slower emulated on AVX2, and with AVX512-BF16 alone it depends on the
              # CPU (17% slower on a Xeon, 1.8x faster on an AMD EPYC): true takes bfloat16
              # with AMX, float32 without native bfloat16 (with a warning), and between them
              # times a few steps of each (cpu_bf16_wanted); "always" forces it. Off by
              # default so that earlier recipes re-run as they ran
              "cpu_bf16": False,
              # also keep the network's state every this many steps in snapshots/ (0: off),
              # for averaging the end of a run (python -m hand25d_ros.tools.average_snapshots)
              "snapshot_every": 0,
              "threads": 0,
              # start from this weights file (fine-tuning) instead of random weights; ignored
              # when the run folder already holds last.pt (resume wins)
              "init_weights": "",
              # stop after this much training time (0: no limit); the learning-rate schedule
              # follows whichever of steps and time is further along, so a time-boxed run
              # still ends annealed
              "time_budget_min": 0},
    # real validation data: measured, never trained on
    "val_real": {"path": "../shared/data/real_val_snap", "limit": 0},
}


def deep_update(base: dict, upd: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (upd or {}).items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _allowed_keys() -> dict[tuple, set]:
    """Config path -> the keys allowed under it, where they are not those of DEFAULT_CONFIG."""
    import dataclasses
    import inspect

    from .data.synthetic import SyntheticConfig
    from .model import Hand25DNet
    # the crop size is the network's input size, not the renderer's to choose
    render = {f.name for f in dataclasses.fields(SyntheticConfig)} - {"crop_size_px"}
    # the keypoint set is this package's 21 (a weights file of another is refused)
    net = set(inspect.signature(Hand25DNet.__init__).parameters) - {"self", "num_keypoints"}
    return {("arch",): {"name"} | net,
            ("data", "synthetic", "config"): render,
            ("data", "val_synthetic", "config"): render,
            ("data", "val_synthetic"): set(DEFAULT_CONFIG["data"]["val_synthetic"]) | {"config"},
            ("data", "augment"): {f.name for f in dataclasses.fields(AugmentConfig)},
            ("data", "extra", "*"): set(_EXTRA_SOURCE_DEFAULT)}


# Value rules beyond the default's type, for the entries whose bad values would only fail (or
# silently do nothing) after the renders: (what is expected, test). 0 stays allowed where the
# trainer reads it as "off", "no limit" or "all" (val_every, snapshot_every, time_budget_min,
# threads, val_synthetic.num_samples, val_real.limit); step counts that it divides by or counts
# up to must be >= 1 (max_steps 0 trained one step and wrote its weights).
_AT_LEAST_1 = (">= 1", lambda v: v >= 1)
_POSITIVE = ("> 0", lambda v: v > 0)
_NON_NEGATIVE = (">= 0", lambda v: v >= 0)
VALUE_RULES: dict[str, tuple] = {
    **dict.fromkeys(["train.batch_size", "train.max_steps", "train.checkpoint_every", "train.log_every",
                     "data.synthetic.num_samples", "data.synthetic.shard_size", "data.synthetic.render_workers",
                     "data.negative_backgrounds"], _AT_LEAST_1),
    "train.lr": _POSITIVE,
    # seeds: numpy's generators take no negative ones
    **dict.fromkeys(["train.weight_decay", "train.warmup_steps", "train.lambda_z", "train.lambda_side",
                     "train.lambda_hand", "train.num_workers", "train.seed", "train.val_every",
                     "train.snapshot_every", "train.threads", "train.time_budget_min", "data.synthetic.seed",
                     "data.synthetic_weight", "data.val_synthetic.num_samples", "data.val_synthetic.seed",
                     "val_real.limit"], _NON_NEGATIVE),
    "data.p_negative": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "data.extra[].weight": _NON_NEGATIVE,
}
# where the default's type is too narrow: a time budget in fractional minutes is meaningful
NUMBER_KEYS = {"train.time_budget_min"}
# null switches these off as their empty default does
NULLABLE_KEYS = {"train.init_weights", "val_real.path"}
# sections that null leaves meaningful: no held-out renders, the renderer's defaults
NULLABLE_SECTIONS = {"data.val_synthetic", "data.synthetic.config", "data.val_synthetic.config"}


def config_value_error(key: str, value, default) -> str | None:
    """What is wrong with ``value`` for the dotted config ``key`` whose DEFAULT_CONFIG entry is
    ``default`` (a scalar or list), or None where nothing is: its type must be the default's
    (an int also does for a float; true/false is not a number), numbers finite and within
    ``VALUE_RULES``."""
    if key == "train.cpu_bf16":   # a bool that also takes "always"
        return None if isinstance(value, bool) or value == "always" else \
            f"must be true, false or always, got {value!r}"
    if value is None and key in NULLABLE_KEYS:
        return None
    if isinstance(default, bool):
        ok, what = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        integral = isinstance(default, int) and key not in NUMBER_KEYS
        ok = isinstance(value, int if integral else (int, float)) and not isinstance(value, bool)
        what = "an integer" if integral else "a number"
        if ok and not math.isfinite(value):
            ok, what = False, "a finite number"
        rule = VALUE_RULES.get(key)
        if ok and rule and not rule[1](value):
            ok = False
        if rule:
            what += f" {rule[0]}"
    elif isinstance(default, str):
        ok, what = isinstance(value, str), "a string"
    elif isinstance(default, list):
        ok, what = isinstance(value, list), "a list"
    else:
        return None
    if ok:
        return None
    got = f"{value!r} ({type(value).__name__})" if not isinstance(value, (int, float)) else repr(value)
    hint = ""
    if _exponent_text(value) and (isinstance(default, float) or key in NUMBER_KEYS):
        hint = f" (YAML reads {value} as text: write it with a decimal point, e.g. 1.0e-3)"
    return f"must be {what}, got {got}{hint}"


def _check_extra_options(item: dict, where: str) -> None:
    # an unknown option would be a TypeError from the loader's constructor; its values the
    # loader checks when it opens, which is before the renders too
    import difflib
    options = item.get("options", {})
    if not isinstance(options, dict):
        raise SystemExit(f"{where}.options must be a mapping of the {item['type']} loader's arguments, "
                         f"got {options!r}")
    valid = extra_source_options(item["type"])
    for key in options:
        if key not in valid:
            near = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            takes = f"it takes {', '.join(valid)}" if valid else "it takes none"
            raise SystemExit(f"{where}.options: a {item['type']!r} dataset has no option {key!r}{hint}; {takes}")
    if item["type"] == "stb" and "sequences" in options and "split" in item:
        raise SystemExit(f"{where}: give STB's split or options.sequences, not both")


def _exponent_text(value) -> bool:
    # YAML 1.1 takes 1e-3 for a string, a surprise worth naming in the error
    return isinstance(value, str) and bool(_EXPONENT_NUMBER.fullmatch(value.strip()))


def _key_paths(allowed: dict, default=None, path=()) -> list[tuple]:
    """Every config key's path, in DEFAULT_CONFIG's order (a section's own keys before its
    subsections'), where ``allowed`` lists a section's keys in place of DEFAULT_CONFIG's."""
    default = DEFAULT_CONFIG if default is None and not path else default
    keys = allowed.get(path) or (list(default) if isinstance(default, dict) else [])
    sub = default if isinstance(default, dict) else {}
    own = [path + (k,) for k in (sorted(keys) if path in allowed else keys)]
    out = [q for q in own if not isinstance(sub.get(q[-1]), dict) and q not in allowed and q + ("*",) not in allowed]
    for q in own:
        if isinstance(sub.get(q[-1]), dict) or q in allowed:
            out += _key_paths(allowed, sub.get(q[-1]), q)
        elif q + ("*",) in allowed:
            out += _key_paths(allowed, None, q + ("*",))
    return out


def _key_elsewhere(name: str, allowed: dict) -> tuple | None:
    """The path of the config key called ``name`` (else of the nearest name) in any section: a
    key under another section, or without its own (time_budget_min for train.time_budget_min)."""
    import difflib
    paths = _key_paths(allowed)
    same = [q for q in paths if q[-1] == name]
    if same:
        return same[0]
    close = difflib.get_close_matches(name, [q[-1] for q in paths], n=1)
    return next((q for q in paths if q[-1] == close[0]), None) if close else None


def check_config(cfg: dict, source: str = "the config") -> None:
    """Reject keys the trainer would silently ignore (a misspelt ``time_budget_min`` would
    otherwise surface hours later as a run that never stopped), values of another type than
    the default's or out of range (``VALUE_RULES``: ``max_steps=abc`` would otherwise fail after
    the renders, ``max_steps=0`` write untrained weights) and bad augmentation values.

    Raises:
        SystemExit: naming the dotted key, where it came from, and the closest valid key or
        the value and what was expected.
    """
    import difflib
    allowed = _allowed_keys()

    def dotted(path):
        return ".".join(path).replace(".*", "[]")

    def walk(node, default, path):
        if isinstance(node, list) and path == ("data", "extra"):
            for i, item in enumerate(node):
                if not isinstance(item, dict):
                    raise SystemExit(f"{source}: data.extra[{i}] must be a mapping with type and root, got {item!r}")
                walk(item, None, path + ("*",))
                # here, not when the datasets open: a missing key was a KeyError traceback, and a
                # bad weight failed only when training drew its first batch, after the renders
                missing = [k for k in ("type", "root") if k not in item]
                if missing:
                    raise SystemExit(f"{source}: data.extra[{i}] needs {' and '.join(missing)} "
                                     f"(type: one of {', '.join(sorted(EXTRA_SOURCE_TYPES))}; root: the "
                                     f"dataset's folder), got {item!r}")
                for k, v in item.items():
                    problem = config_value_error(f"data.extra[].{k}", v, _EXTRA_SOURCE_DEFAULT[k])
                    if problem:
                        raise SystemExit(f"{source}: data.extra[{i}].{k} {problem}")
                if item["type"] not in EXTRA_SOURCE_TYPES:
                    raise SystemExit(f"{source}: data.extra[{i}].type must be one of "
                                     f"{', '.join(sorted(EXTRA_SOURCE_TYPES))}, got {item['type']!r}")
                if not item["root"]:
                    raise SystemExit(f"{source}: data.extra[{i}].root must be the dataset's folder, got ''")
                if "split" in item and item["type"] not in EXTRA_DEFAULT_SPLIT:
                    raise SystemExit(f"{source}: data.extra[{i}] is a {item['type']!r} dataset, which has "
                                     f"no split (got split {item['split']!r})")
                _check_extra_options(item, f"{source}: data.extra[{i}]")
            return
        if not isinstance(node, dict):
            if node is None and isinstance(default, dict) and dotted(path) not in NULLABLE_SECTIONS:
                # a section whose entries are all commented out: a traceback where it is read
                # (val_real's after the renders), not the defaults a reader might expect
                hint = " (val_real.path: null switches real validation off)" if path == ("val_real",) else ""
                raise SystemExit(f"{source}: {dotted(path)} is empty (null): give its entries, or leave it "
                                 f"out for its defaults{hint}")
            if node is not None and (path in allowed or isinstance(default, dict)):
                raise SystemExit(f"{source}: {dotted(path)} must be a mapping, got {node!r}")
            problem = None if isinstance(default, dict) else config_value_error(dotted(path), node, default)
            if problem:
                raise SystemExit(f"{source}: {dotted(path)} {problem}")
            return
        keys = allowed.get(path)
        if keys is None:
            if not isinstance(default, dict):
                return
            keys = set(default)
        for k, v in node.items():
            if k not in keys:
                near = difflib.get_close_matches(str(k), sorted(keys), n=1)
                found = path + (near[0],) if near else _key_elsewhere(str(k), allowed)
                hint = f" (did you mean {dotted(found)!r}?)" if found else ""
                raise SystemExit(f"{source}: unknown config key {dotted(path + (str(k),))!r}{hint}; "
                                 f"valid keys there: {', '.join(sorted(keys))}")
            walk(v, default.get(k) if isinstance(default, dict) else None, path + (k,))

    walk(cfg, DEFAULT_CONFIG, ())
    d = cfg.get("data") or {}
    # real_val_snap measures the network and must never be trained on (its licence, and every
    # real figure would be a training figure): a data.extra folder entry could name it
    held_out = {Path(p).resolve() for p in ((cfg.get("val_real") or {}).get("path"),
                                            DEFAULT_CONFIG["val_real"]["path"]) if p}
    for i, item in enumerate(d.get("extra") or []):
        if Path(item["root"]).resolve() in held_out:
            raise SystemExit(f"{source}: data.extra[{i}].root {item['root']!r} is the real validation set "
                             f"({Path(item['root']).resolve()}), which is measured on, never trained on")
    weights = [d.get("synthetic_weight", 1.0)] + [e.get("weight", 1.0) for e in d.get("extra") or []]
    if sum(weights) <= 0:   # the sampler's probabilities would be 0/0 at the first batch
        raise SystemExit(f"{source}: data.synthetic_weight and every data.extra weight are 0: "
                         "nothing to draw training samples from")
    # values too, where a bad one would first fail inside a DataLoader worker after rendering
    try:
        AugmentConfig(**d.get("augment", {}))
    except ValueError as exc:
        raise SystemExit(f"{source}: {exc}") from None
    # the renderer's settings too: a bad one was a traceback, for val_synthetic's only after the
    # training renders
    from .data.synthetic import SyntheticConfig
    for name in ("synthetic", "val_synthetic"):
        render = (d.get(name) or {}).get("config") or {}
        try:
            SyntheticConfig(**render)
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"{source}: data.{name}.config {render}: {exc}") from None
    # hand-free crops carry no keypoint weight: without the crop head's hand-present logit to
    # train they only took that share of every batch from the keypoints
    if d.get("p_negative") and not (cfg.get("arch") or {}).get("crop_head"):
        raise SystemExit(f"{source}: data.p_negative {d['p_negative']} needs arch.crop_head: true "
                         "(the hand-free crops train its hand-present logit and nothing else)")
    # the network too (its size's name, its arguments' types and ranges): a bad one was a
    # traceback from the model or, for an input size under the renderer's least, from the renders
    arch = cfg.get("arch") or {}
    try:
        SyntheticConfig(crop_size_px=build_model_from_arch(arch).input_size)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"{source}: arch {arch}: {exc}") from None


def apply_overrides(cfg: dict, sets: list[str]) -> dict:
    for item in sets or []:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = cfg
        parts = key.split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):   # a section the config left empty (null) or gave a value
                raise SystemExit(f"--set {item!r}: {'.'.join(parts[:i + 1])} is {node!r} in the config, "
                                 "not a mapping of entries")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise SystemExit(f"--set {item!r}: the value is not YAML: {str(exc).splitlines()[0]}") from None
        if isinstance(parsed, str) and _EXPONENT_NUMBER.fullmatch(parsed.strip()):
            parsed = float(parsed)   # YAML 1.1 reads 1e-3 as text; typed on a command line it is the number
        node[parts[-1]] = parsed
    return cfg


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


# ------------------------------------------------------------------------- data

def hand_free_crop(rng: np.random.Generator, S: int, pool: np.ndarray | None) -> dict:
    """An S x S sample without a hand (background, skin-coloured blobs, hand-free patches),
    labelled ``is_hand=False``; its keypoint fields are placeholders that carry no weight."""
    from .data.composites import composite_scene
    image, _ = composite_scene(rng, None, S, S, n_hands=0, pool=pool)
    K = np.array([[S * 1.5, 0.0, (S - 1) / 2], [0.0, S * 1.5, (S - 1) / 2], [0.0, 0.0, 1.0]])
    return {"image": image, "K": K, "joints_2d_px": np.full((kp.NUM_KEYPOINTS, 2), (S - 1) / 2),
            "joints_3d_mm": None, "is_left": None, "is_hand": False}


class TrainingView(Dataset):
    """Any source of samples (dict with image, K, joints_2d_px, joints_3d_mm or None)
    -> augmented network inputs and 2.5D targets."""

    def __init__(self, source, augment: AugmentConfig | None, seed: int, p_negative: float = 0.0,
                 negative_pool: np.ndarray | None = None):
        self.source = source
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        # hand-free crops teach the crop head's "hand present" logit what a hand is not
        self.p_negative, self.negative_pool = p_negative, negative_pool

    def __len__(self):
        return len(self.source)

    def _key(self, i: int, n: int, *stream: int) -> tuple:
        # the n-th repeat of item i in an epoch (MixSampler draws with replacement) gets its own
        # draws: keyed by (seed, epoch, i) alone, every repeat was a pixel-exact copy of the
        # first, and a small data.extra source is drawn hundreds of times an epoch; a first
        # draw keeps the key it always had
        return (self.seed, self.epoch, i, *stream) if n == 0 else (self.seed, self.epoch, i, *stream, 18, n)

    def _negative(self, i, S: int, n: int = 0) -> dict:
        return hand_free_crop(np.random.default_rng(self._key(i, n, 17)), S, self.negative_pool)

    def __getitem__(self, key):
        """``key``: an item's index, or (index, n) for its n-th repeat in the epoch (MixSampler)."""
        i, n = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (key, 0)
        s = self.source[i]
        if self.p_negative and np.random.default_rng(self._key(i, n, 16)).random() < self.p_negative:
            s = self._negative(i, int(s["image"].shape[0]), n)
        is_hand = bool(s.get("is_hand", True))
        image, K = s["image"], np.asarray(s["K"], dtype=np.float64)
        uv = np.asarray(s["joints_2d_px"], dtype=np.float64)
        P = s.get("joints_3d_mm")
        has_3d = P is not None and bool(s.get("has_3d", True))
        # an annotated folder's null keypoints: no label, so no weight (its rows are NaN)
        labelled = np.ones(kp.NUM_KEYPOINTS, bool) if s.get("labelled") is None else np.asarray(s["labelled"], bool)
        weight = np.where(labelled, 1.0 if is_hand else 0.0, 0.0).astype(np.float32)
        if self.augment is not None:
            rng = np.random.default_rng(self._key(i, n))
            image, K, uv, inside = augment_sample(image, K, uv, rng, self.augment)
        # finite placeholders where unlabelled: a NaN target gives a NaN gradient at weight 0
        uv = np.where(labelled[:, None], uv, 0.0)
        if has_3d:
            P = np.asarray(P, dtype=np.float64)
            _, z, bone_mm = geo.pose_to_25d(P, K)
            z = np.where(labelled, z, 0.0)
            if not np.all(np.isfinite(z)):
                # depth is normalised by the wrist -> index MCP bone: an annotation with the two
                # on one point (a missing MCP filled with the wrist's) made every loss NaN in the
                # log and a depth term of nothing; the run ends naming it, as a corrupt image does
                from .data.public_datasets import DatasetError
                where = s.get("image_path") or f"training item {i}"
                row = f" (annotation {s['annotation_index']})" if s.get("annotation_index") is not None else ""
                raise DatasetError(f"{where}{row}: its wrist and index MCP are {float(bone_mm):.3g} mm apart, "
                                   "so its depth cannot be normalised; fix or remove that annotation")
        else:
            z = np.zeros(kp.NUM_KEYPOINTS)
        # without is_left, a 3D annotation names its hand by its chirality, as evaluation reads
        # it: a folder in real_val_snap's format trained the crop head's left/right logit on none
        # of its hands
        is_left = kp.annotated_hand_is_left(s.get("is_left"), P if has_3d else None, labelled)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),  # uint8 CHW
            "uv": torch.from_numpy(uv.astype(np.float32)),
            "z": torch.from_numpy(np.asarray(z, dtype=np.float32)),
            "has_3d": torch.tensor(has_3d),
            # -1: unknown (a 2D-only sample without a left/right label, a hand-free crop)
            "is_left": torch.tensor(float(is_left) if is_left is not None else -1.0),
            "is_hand": torch.tensor(float(is_hand)),
            "weight_2d": torch.from_numpy(weight),
            "weight_z": torch.from_numpy(labelled.astype(np.float32)),
        }


class MixSampler(torch.utils.data.Sampler):
    """Weighted sampling with replacement over concatenated sources, ``chunk`` draws an epoch,
    seeded per (seed, rank, epoch). Yields (index, n): n counts the earlier draws of that
    index in the epoch, for :class:`TrainingView` to augment each repeat afresh."""

    def __init__(self, sizes, weights, seed, rank=0, chunk=100000):
        self.sizes, self.weights = list(sizes), np.asarray(weights, dtype=np.float64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.seed, self.rank, self.chunk, self.epoch = seed, rank, chunk, 0

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.rank, self.epoch))
        p = self.weights / self.weights.sum()
        src = rng.choice(len(self.sizes), size=self.chunk, p=p)
        drawn: dict[int, int] = {}
        for s in src:
            i = int(self.offsets[s] + rng.integers(self.sizes[s]))
            n = drawn.get(i, 0)
            drawn[i] = n + 1
            yield i, n

    def __len__(self):
        return self.chunk


class Concat(Dataset):
    def __init__(self, parts):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, i):
        j = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[j][i - int(self.offsets[j])]


def ensure_synthetic(cache_dir, num_samples, seed, crop_size, shard_size=2048, workers=1, config=None):
    """Render the synthetic shards if they are not all there (resumable), and open the first
    ``num_samples`` (a cache extended for a larger run keeps more)."""
    from .data.synthetic import ShardDataset, SyntheticConfig, write_shards
    cfg = SyntheticConfig(crop_size_px=crop_size, **(config or {}))
    write_shards(cache_dir, num_samples, cfg, seed, shard_size=shard_size, workers=workers)
    return ShardDataset(cache_dir, num_samples)


def training_renders(cfg: dict, crop: int, workers: int | None = None):
    """A config's training renders, ``data.synthetic`` (rendered on first use, resumable), with
    its ``render_workers`` unless ``workers`` is given."""
    syn = cfg["data"]["synthetic"]
    return ensure_synthetic(syn["cache_dir"], syn["num_samples"], syn["seed"], crop,
                            syn.get("shard_size", 2048),
                            syn.get("render_workers", 1) if workers is None else workers, syn.get("config"))


# data.extra's dataset types and the loader (hand25d_ros.data.public_datasets) of each
EXTRA_SOURCE_TYPES: dict[str, str] = {"freihand": "FreiHANDDataset", "rhd": "RHDDataset",
                                      "stb": "STBDataset", "folder": "AnnotatedFolderDataset"}
# the type each entry's value must have (weight: how often it is drawn beside the renders;
# split: the loader's, where it has one; options: the loader's other arguments)
_EXTRA_SOURCE_DEFAULT = {"type": "", "root": "", "weight": 1.0, "split": "", "options": {}}
# Each dataset's training split unless the entry names one. The loaders' own defaults
# already are that for FreiHAND and RHD; STB's is every sequence, which would train on
# B1, the sequences the benchmark tests on.
EXTRA_DEFAULT_SPLIT = {"freihand": "training", "rhd": "training", "stb": "train"}


def extra_source_options(kind: str) -> list[str]:
    """The loader arguments a ``data.extra`` entry of dataset type ``kind`` may set in its
    ``options`` (root and split have their own keys)."""
    import inspect

    from .data import public_datasets as pd
    params = inspect.signature(getattr(pd, EXTRA_SOURCE_TYPES[kind]).__init__).parameters
    return [name for name in params if name not in ("self", "root", "split")]


def build_extra_source(spec: dict):
    from .data import public_datasets as pd
    kind, root = spec["type"], spec["root"]
    if kind not in EXTRA_SOURCE_TYPES:
        raise SystemExit(f"unknown dataset type {kind!r}; choose one of {sorted(EXTRA_SOURCE_TYPES)}")
    options = dict(spec.get("options") or {})
    if kind in EXTRA_DEFAULT_SPLIT and not (kind == "stb" and "sequences" in options):
        # STB's sequences name the split themselves
        options["split"] = spec.get("split", EXTRA_DEFAULT_SPLIT[kind])
    return getattr(pd, EXTRA_SOURCE_TYPES[kind])(root, **options)


class CropSource(Dataset):
    """Wrap a full-image dataset: crop around its 2D keypoints as inference would."""

    def __init__(self, source, crop_size, seed, scale=(1.2, 1.7), shift=0.12, rotation_deg=0.0):
        self.source, self.crop_size, self.seed, self.scale, self.shift = source, crop_size, seed, scale, shift
        self.rotation_deg = rotation_deg

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        from .crop import crop_affine, crop_intrinsics, transform_points, warp_crop
        s = dict(self.source[i])
        rng = np.random.default_rng((self.seed, 7, i))
        uv = np.asarray(s["joints_2d_px"], dtype=np.float64)
        # framed on the labelled keypoints: an unlabelled one is NaN (or, before null meant
        # "unlabelled", a placeholder at (0, 0) that widened the crop and shrank the hand)
        framed = uv if s.get("labelled") is None else uv[np.asarray(s["labelled"], bool)]
        lo, hi = framed.min(0), framed.max(0)
        side = float(max(hi - lo)) * rng.uniform(*self.scale)
        centre = (lo + hi) / 2 + rng.uniform(-self.shift, self.shift, 2) * side
        # drawn only when asked for, as the renderer does, so that crops without it are as they were
        rot = np.deg2rad(rng.uniform(-self.rotation_deg, self.rotation_deg)) if self.rotation_deg else 0.0
        A = crop_affine(centre, max(side, 8.0), self.crop_size, rot)
        s["image"] = warp_crop(s["image"], A, self.crop_size)
        s["K"] = crop_intrinsics(s["K"], A)
        s["joints_2d_px"] = transform_points(A, uv)
        if s.get("joints_3d_mm") is None:
            s["has_3d"] = False
        return s


def training_data(cfg: dict, synth, crop: int, rank: int = 0, extras: list | None = None):
    """The training samples of a config: (TrainingView, MixSampler, bone ratios of the synthetic
    hands). ``extras``: the ``data.extra`` datasets already opened (None: opened here)."""
    d, t = cfg["data"], cfg["train"]
    specs = d.get("extra", [])
    extras = [build_extra_source(spec) for spec in specs] if extras is None else extras
    sources, weights = [synth], [d.get("synthetic_weight", 1.0)]
    # the photos are framed as the renders are (crop side over keypoint box, centre jitter,
    # rotation): with fixed defaults, a recipe that reframed the renders left the photos as
    # they were, and how a hand fills its crop told the network which source it came from
    from .data.synthetic import SyntheticConfig
    render = SyntheticConfig(crop_size_px=crop, **(d["synthetic"].get("config") or {}))
    for spec, source in zip(specs, extras):
        sources.append(CropSource(source, crop, t["seed"], tuple(render.crop_scale), render.crop_shift_frac,
                                  render.crop_rotation_deg))
        weights.append(float(spec.get("weight", 1.0)))
    aug = AugmentConfig(**d.get("augment", {}))
    p_neg = float(d.get("p_negative", 0.0))
    pool = None
    if p_neg > 0:
        from .data.composites import background_pool
        pool = background_pool(int(d.get("negative_backgrounds", 1000)), 192, t["seed"])
    view = TrainingView(Concat(sources), aug, t["seed"] + 1000 * rank, p_neg, pool)
    return view, MixSampler([len(s) for s in sources], weights, t["seed"], rank), synth_bone_ratios(synth)


def validation_data(cfg: dict, crop: int):
    """The held-out synthetic crops of a config (rendered on first use), or None. They are
    rendered with ``val_synthetic.config`` where it is given, else the training renders'."""
    d = cfg["data"]
    syn, vs = d["synthetic"], d.get("val_synthetic")
    if not (vs and vs.get("num_samples")):
        return None
    return TrainingView(ensure_synthetic(vs["cache_dir"], vs["num_samples"], vs["seed"], crop,
                                         syn.get("shard_size", 2048), syn.get("render_workers", 1),
                                         vs.get("config", syn.get("config"))), None, 0)


# ------------------------------------------------------------------------- evaluation hook

def eval_crops(model, dataset, device, batch_size=64):
    """Network-only errors on pre-cropped samples: 2D (crop px) and normalised depth."""
    model.eval()
    errs2d, errsz = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    with torch.no_grad():
        for b in loader:
            uv, z, _ = model(b["image"].to(device).float().div_(255.0))
            errs2d.append((uv.cpu() - b["uv"]).norm(dim=-1).mean(-1).numpy())
            errsz.append((z.cpu() - b["z"]).abs().mean(-1).numpy())
    model.train()
    return {"val_synth_2d_px": float(np.concatenate(errs2d).mean()),
            "val_synth_z_norm": float(np.concatenate(errsz).mean())}


# ------------------------------------------------------------------------- training

def _rank_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


@functools.cache
def _cpu_flags() -> frozenset[str]:
    # read once: both flag checks ask, and the CPU does not change under a process
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has AMX bfloat16 tile units, read from /proc/cpuinfo's flags (Linux);
    False where that cannot be read.

    AMX is what makes bfloat16 training pay on every CPU measured with it: 0.64 against 1.66 s
    a step on an AMX Xeon (benchmarks/bench_train_step.py).
    """
    return "amx_bf16" in _cpu_flags()


def cpu_has_avx512_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively with AVX512-BF16 (without it, bfloat16 is
    emulated: 30 s against 3 s a step on an AVX2-only CPU); False where flags cannot be read."""
    return "avx512_bf16" in _cpu_flags()


def train_step_time_s(model, opt, x, bf16: bool, warmup: int = 1, runs: int = 3) -> float:
    """Median seconds of one CPU training step of ``model`` on the batch ``x`` (B, 3, H, W):
    forward with the crop head, a loss over every output, backward and ``opt``'s update, the
    convolutions in bfloat16 (autocast) when ``bf16``. It updates the model's weights."""
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            uv, z, conf, logit = model(x, crop_logits=True)
        loss = uv.float().mean() + z.float().mean() + conf.float().mean() + logit.float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return median_time_s(step, warmup, runs)


def measure_cpu_precisions(arch: dict, batch_size: int) -> tuple[float, float]:
    """(float32, bfloat16) seconds a training step of a fresh ``arch`` network at
    ``batch_size`` on this CPU with this process's threads, channels-last as training runs.
    A fresh network, so that the run's own weights are not touched."""
    model = build_model_from_arch(arch).train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    x = torch.rand(batch_size, 3, model.input_size, model.input_size).contiguous(memory_format=torch.channels_last)
    return train_step_time_s(model, opt, x, False), train_step_time_s(model, opt, x, True)


def cpu_bf16_wanted(value, arch: dict, batch_size: int, on_cpu: bool) -> tuple[bool, str]:
    """Whether ``train.cpu_bf16`` gives bfloat16 on this CPU, and a line saying why where
    ``true`` was not simply taken: false, "always", or true: bfloat16 where it is faster than
    float32. AMX: always faster; no native bfloat16 (AVX2): emulated, far slower; AVX512-BF16
    without AMX differs by CPU (1.89 against 1.62 s a step on such a Xeon, 0.68 against
    1.25 s on an AMD EPYC), so there a few steps of each are timed and the faster is taken.

    Raises:
        SystemExit: for any other value, naming it.
    """
    if value not in (False, True, "always"):
        raise SystemExit(f"train.cpu_bf16 must be true, false or always, got {value!r}")
    if not on_cpu:
        return False, ""
    if value is not True:
        return value == "always", ""
    if cpu_has_amx_bf16():
        return True, ""
    if not cpu_has_avx512_bf16():
        return False, ("warning: train.cpu_bf16: this CPU has neither AMX nor AVX512-BF16, so "
                       "bfloat16 is emulated and far slower than float32; training in float32 "
                       "(cpu_bf16: always forces bfloat16)")
    fp32_s, bf16_s = measure_cpu_precisions(arch, batch_size)
    faster = bf16_s < fp32_s
    return faster, (f"train.cpu_bf16: AVX512-BF16 without AMX, measured {bf16_s:.2f} s a step in "
                    f"bfloat16 against {fp32_s:.2f} s in float32: training in "
                    f"{'bfloat16' if faster else 'float32'}")


def progress(step, wall_s, cfg) -> float:
    """Fraction of the run done, by steps or by the time budget, whichever is further."""
    t = cfg["train"]
    frac = step / max(1, t["max_steps"])
    if t.get("time_budget_min"):
        frac = max(frac, wall_s / (60.0 * t["time_budget_min"]))
    return min(1.0, frac)


def lr_at(step, cfg, wall_s: float = 0.0):
    """Linear warm-up, then cosine decay to 2% of the peak over the run's progress."""
    t = cfg["train"]
    if step < t["warmup_steps"]:
        return t["lr"] * (step + 1) / t["warmup_steps"]
    p0 = progress(t["warmup_steps"], 0.0, cfg)
    frac = (progress(step, wall_s, cfg) - p0) / max(1e-9, 1.0 - p0)
    return t["lr"] * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, frac)))))


# what may change when a run is resumed: how long it runs, how it uses the machine, how often
# it logs and checks; anything else would train the rest of the run on another recipe than the
# one its weights file records
RESUMABLE_KEYS = ("train.time_budget_min", "train.max_steps", "train.threads", "train.num_workers",
                  "train.val_every", "train.log_every", "train.checkpoint_every", "train.snapshot_every",
                  "data.synthetic.render_workers", "val_real.")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_settings(before: dict, now: dict, may_change=(), name=str) -> str | None:
    """The settings a resumed run would change (both dicts flat; ``may_change``: names, or
    prefixes ending in '.'), as ``name: old -> new`` text; None when there are none."""
    changed = [k for k in sorted(set(before) & set(now))
               if before[k] != now[k] and not any(k == r or (r.endswith(".") and k.startswith(r))
                                                  for r in may_change)]
    if not changed:
        return None
    return "; ".join(f"{name(k)}: {before[k]!r} -> {now[k]!r}" for k in changed[:6]) + (" ..." if len(changed) > 6 else "")


def settings_in_effect(cfg: dict) -> dict:
    """``cfg`` with the defaults that the trainer, the network and the renderer fill in written
    out (``DEFAULT_CONFIG``, the arch's size and ``Hand25DNet``'s, ``AugmentConfig``'s,
    ``SyntheticConfig``'s; the held-out renders take the training renders' config where they
    name none), tuples as lists: a setting left out and the same one written at its default
    then compare equal, and one that a config adds to an open section compares unequal."""
    import dataclasses
    import inspect
    import json

    from .data.synthetic import SyntheticConfig
    from .model import ARCHS, Hand25DNet
    c = deep_update(DEFAULT_CONFIG, cfg)
    net = {p.name: p.default for p in inspect.signature(Hand25DNet.__init__).parameters.values()
           if p.default is not inspect.Parameter.empty}
    arch = c.get("arch") or {}
    c["arch"] = {**net, **ARCHS.get(arch.get("name", "small"), {}), **arch}
    d = c["data"]
    d["augment"] = {**{f.name: f.default for f in dataclasses.fields(AugmentConfig)}, **(d.get("augment") or {})}
    # an entry's weight and options only: a split left out meant every STB sequence before
    # entries had one
    d["extra"] = [{"weight": 1.0, "options": {}, **e} if isinstance(e, dict) else e for e in d.get("extra") or []]
    render = {f.name: f.default for f in dataclasses.fields(SyntheticConfig) if f.name != "crop_size_px"}
    d["synthetic"]["config"] = {**render, **(d["synthetic"].get("config") or {})}
    vs = d.get("val_synthetic")
    if isinstance(vs, dict):
        vs["config"] = {**render, **(vs["config"] or {})} if "config" in vs else d["synthetic"]["config"]
    return json.loads(json.dumps(c))


def resume_state(out_dir: Path, cfg: dict) -> dict | None:
    """The training state in ``out_dir/last.pt``, read and checked before any rendering: None
    for a new run; WeightsError naming the file when it cannot be read, SystemExit naming the
    settings that differ from the ones the run was started with (outside ``RESUMABLE_KEYS``)."""
    from .weights import read_checkpoint
    path = Path(out_dir) / "last.pt"
    if not path.exists():
        return None
    state = read_checkpoint(path, ("model", "opt", "scaler", "step", "samples_seen", "wall_s", "torch_rng"),
                            "training")
    # with the defaults in: a key the run's config left out (an augmentation, arch.crop_head) is
    # otherwise not compared, and the rest of the run trains on a recipe its weights misstate
    diff = changed_settings(_flat(settings_in_effect(state.get("config") or {})), _flat(settings_in_effect(cfg)),
                            RESUMABLE_KEYS)
    if diff:
        raise SystemExit(f"{out_dir} holds a run started with other settings ({diff}); "
                         "resume it with the same ones (only the time budget, max_steps, threads and how often "
                         "it logs, checks and validates may change), or use another --out")
    return state


def cut_log(path: Path, step: int) -> None:
    """Drop the rows of ``log.csv`` after ``step``: a resumed run logs them again."""
    if not path.is_file():
        return
    rows = list(csv.reader(path.open(newline="")))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) != len(rows):
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, path)


def cut_snapshots(out_dir: Path, step: int) -> None:
    """Remove the network states in ``snapshots/`` saved after ``step`` by a run that was stopped:
    resumed from ``step``, the run saves its own, and one it stops short of was averaged in."""
    for path in (Path(out_dir) / "snapshots").glob("step_*.pt"):
        if path.stem[5:].isdigit() and int(path.stem[5:]) > step:
            path.unlink()


def train(cfg: dict, out_dir: Path, command: str = "", state: dict | None = None,
          extras: list | None = None, init: dict | None = None) -> Path:
    """Run (or resume) training; returns the path of the final weights file. ``state`` is
    :func:`resume_state`'s, read before the renders (None: read here); ``extras`` the
    ``data.extra`` datasets, opened before them (None: opened here); ``init`` the network state
    of ``train.init_weights``, :func:`init_weights_state`'s (None: read here)."""
    world, rank, local = _rank_info()
    distributed = world > 1
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    t = cfg["train"]
    if t.get("threads"):
        torch.set_num_threads(int(t["threads"]))
    # decided before the run folder and the renders exist, so a bad value costs nothing; a
    # timing, where one is needed, runs on the threads training will use
    use_bf16, why = cpu_bf16_wanted(t.get("cpu_bf16", False), cfg["arch"], t["batch_size"],
                                    on_cpu=device.type == "cpu")
    if why and rank == 0:
        print(why, flush=True)
    torch.manual_seed(t["seed"] + rank)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    is_main = rank == 0

    model = build_model_from_arch(cfg["arch"])
    crop = model.input_size
    # rank 0 renders; the others wait at the barrier
    if is_main or not distributed:
        synth = training_renders(cfg, crop)
    if distributed:
        torch.distributed.barrier()
        if not is_main:
            synth = training_renders(cfg, crop, workers=1)
    train_view, sampler, bone_ratios = training_data(cfg, synth, crop, rank, extras)
    loader = DataLoader(train_view, batch_size=t["batch_size"], sampler=sampler,
                        num_workers=t["num_workers"], drop_last=True,
                        persistent_workers=False, pin_memory=device.type == "cuda")
    val_synth = validation_data(cfg, crop) if is_main else None
    if is_main:
        print(real_validation_notice(cfg), flush=True)
    # the real-data check imports its modules lazily; importing them now keeps an edit of
    # the package during an hours-long run from pairing new evaluate code with the old
    # keypoints module (a run here lost every real validation to that)
    from . import estimator as _estimator, evaluate as _evaluate  # noqa: F401

    model.to(device)
    use_amp = bool(t.get("amp")) and device.type == "cuda"
    channels_last = device.type == "cpu"
    if channels_last:
        # oneDNN's convolutions run fastest on channels-last tensors, in either precision:
        # bfloat16 0.64 against 0.75 s a step on an AMX Xeon, float32 1.62 against 1.82 s on an
        # AVX512 one (one thread, benchmarks/bench_train_step.py); load_state_dict keeps the layout
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    # the one mixed precision this run uses, if any: fp16 on CUDA, bfloat16 on a CPU
    amp_dtype = torch.float16 if use_amp else torch.bfloat16 if use_bf16 else None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, samples_seen, wall = 0, 0, 0.0
    ckpt_path = out_dir / "last.pt"
    if state is None:
        state = resume_state(out_dir, cfg)
    if t.get("init_weights") and state is None:
        init_from(model, cfg["arch"], t["init_weights"], init)
        if is_main:
            print(f"initialised from {t['init_weights']}", flush=True)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        scaler.load_state_dict(state["scaler"])
        step, samples_seen, wall = state["step"], state["samples_seen"], state["wall_s"]
        sampler.epoch = state.get("epoch", 0) + 1
        torch.set_rng_state(state["torch_rng"])
        if is_main:
            print(f"resumed from {ckpt_path} at step {step}", flush=True)
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None) \
        if distributed else model
    if is_main:
        with open(out_dir / "config.yaml", "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        cut_log(out_dir / "log.csv", step)
        if state is not None:
            cut_snapshots(out_dir, step)
    log_f = open(out_dir / "log.csv", "a", newline="") if is_main else None
    log = csv.writer(log_f) if log_f else None
    if log_f and log_f.tell() == 0:
        log.writerow(["step", "samples", "wall_s", "lr", "loss", "loss_l1_px", "loss_z", "val_synth_2d_px",
                      "val_real_2d_px", "val_real_pa_mpjpe_mm"])
    tb = None
    if is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter
            tb = SummaryWriter(str(out_dir / "tb"))
        except Exception:
            tb = None
    try:
        from tqdm import tqdm
        bar = tqdm(total=t["max_steps"], initial=step, disable=not is_main, dynamic_ncols=True)
    except ImportError:
        bar = None

    def save_checkpoint():
        if not is_main:
            return
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "scaler": scaler.state_dict(),
                    "step": step, "samples_seen": samples_seen, "wall_s": wall, "epoch": sampler.epoch,
                    "torch_rng": torch.get_rng_state(), "config": cfg}, tmp)
        os.replace(tmp, ckpt_path)

    running = []
    t0 = time.time()
    model.train()
    while progress(step, wall, cfg) < 1.0:
        train_view.epoch = sampler.epoch
        for batch in loader:
            if progress(step, wall, cfg) >= 1.0:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg, wall)
            x = batch["image"].to(device, non_blocking=True).float().div_(255.0)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                uv, z, _, crop_logit = net(x, crop_logits=True)
            loss, terms = latent25d_loss(uv.float(), z.float(), batch["uv"].to(device), batch["z"].to(device),
                                         crop, batch["has_3d"].to(device), batch["weight_2d"].to(device),
                                         t["lambda_z"], batch["weight_z"].to(device))
            if model.crop_head is not None:
                loss = loss + crop_head_loss(crop_logit.float(), batch["is_left"].to(device),
                                             batch["is_hand"].to(device), t)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            samples_seen += x.shape[0] * world
            now = time.time()
            wall += now - t0
            t0 = now
            if distributed and t.get("time_budget_min"):
                # one clock for all ranks, so that they stop at the same step
                w = torch.tensor([wall], device=device)
                torch.distributed.all_reduce(w, op=torch.distributed.ReduceOp.MAX)
                wall = float(w.item())
            running.append((loss.item(), terms["loss_2d"].item() * crop / 2, terms["loss_z"].item()))
            if bar:
                bar.update(1)
            row = None
            if is_main and step % t["log_every"] == 0:
                m = np.mean(running, axis=0)
                running = []
                row = [step, samples_seen, round(wall, 1), lr_at(step, cfg, wall), *np.round(m, 5), "", "", ""]
                if bar:
                    bar.set_postfix(loss=f"{m[0]:.4f}", l1=f"{m[1]:.2f}px", z=f"{m[2]:.3f}")
            if is_main and t["val_every"] and step % t["val_every"] == 0:
                row = row or [step, samples_seen, round(wall, 1), lr_at(step, cfg, wall), "", "", "", "", "", ""]
                vals = validate(model, val_synth, cfg, bone_ratios, device)
                row[7:10] = [vals.get("val_synth_2d_px", ""), vals.get("val_real_2d_px", ""),
                             vals.get("val_real_pa_mpjpe_mm", "")]
                msg = " ".join(f"{k}={v:.2f}" for k, v in vals.items())
                (bar.write if bar else print)(f"step {step}: {msg}")
                if tb:
                    for k, v in vals.items():
                        tb.add_scalar(k, v, step)
                t0 = time.time()  # validation time is not training time
            if row and log:
                log.writerow(row)
                log_f.flush()
                if tb and row[4] != "":
                    tb.add_scalar("loss", row[4], step)
            if step % t["checkpoint_every"] == 0:
                save_checkpoint()
            if is_main and t.get("snapshot_every") and step % t["snapshot_every"] == 0:
                save_snapshot(model, out_dir, step)
        sampler.epoch += 1
    save_checkpoint()
    if bar:
        bar.close()
    weights_path = out_dir / "weights.pt"
    if is_main:
        recipe = {"command": command, "config": cfg, "steps": step, "samples_seen": samples_seen,
                  "train_wall_s": round(wall, 1), "device": str(device), "world_size": world,
                  "precision": {torch.float16: "float16 mixed", torch.bfloat16: "bfloat16 mixed",
                                None: "float32"}[amp_dtype]}
        meta = weights_meta(model, val_synth, cfg, bone_ratios, device, recipe)
        save_weights(model, weights_path, cfg["arch"], meta)
        # the run's result, which log.csv has only at the val_every steps
        print("final validation: " + metrics_text(meta["metrics"]), flush=True)
        print(f"wrote {weights_path}", flush=True)
    if log_f:
        log_f.close()
    if distributed:
        torch.distributed.destroy_process_group()
    return weights_path


def calibrate_crop_head(model, val_synth, device, seed: int, n_negative: int = 500,
                        max_false_rate: float = 0.01) -> dict:
    """The hand-present threshold that at most ``max_false_rate`` of held-out hand-free crops
    pass, with the share of held-out hand crops that pass it and the left/right accuracy."""
    from .data.composites import background_pool
    pool = background_pool(200, 192, seed + 31)      # backgrounds training never saw
    model.eval()
    S = model.input_size

    def probs(images):
        with torch.no_grad():
            x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            return torch.sigmoid(model(x, crop_logits=True)[3]).cpu().numpy()

    negatives = [hand_free_crop(np.random.default_rng((seed + 555, 0, i, 17)), S, pool)["image"]
                 for i in range(n_negative)]
    p_neg = np.concatenate([probs(negatives[a:a + 64])[:, 1] for a in range(0, n_negative, 64)])
    thr = float(min(0.95, max(0.05, np.quantile(p_neg, 1.0 - max_false_rate) + 1e-3)))
    out = {"hand_threshold": thr, "hand_free_crops_passing": float((p_neg >= thr).mean())}
    if val_synth is not None and len(val_synth):
        src = val_synth.source
        n = len(src)
        p_pos = np.concatenate([probs([src[i]["image"] for i in range(a, min(n, a + 64))]) for a in range(0, n, 64)])
        left = np.array([bool(src[i]["is_left"]) for i in range(n)])
        out["hand_crops_passing"] = float((p_pos[:, 1] >= thr).mean())
        out["left_right_accuracy"] = float(((p_pos[:, 0] >= 0.5) == left).mean())
    model.train()
    return out


def metrics_text(metrics: dict) -> str:
    """``name=value`` pairs, three decimals, as the trainer and average_snapshots print them."""
    return " ".join(f"{k}={v:.3f}" for k, v in metrics.items())


def weights_meta(model, val_synth, cfg: dict, bone_ratios, device, recipe: dict) -> dict:
    """Validate a trained network, calibrate its crop head, and return the metadata of its
    weights file (hand threshold, bone ratios, recipe, metrics)."""
    vals = validate(model, val_synth, cfg, bone_ratios, device)
    extra = {}
    if model.crop_head is not None:
        extra = calibrate_crop_head(model, val_synth, device, cfg["train"]["seed"])
        vals.update({k: v for k, v in extra.items() if k != "hand_threshold"})
        print("crop head: " + metrics_text(extra), flush=True)
    return {**({"hand_threshold": extra["hand_threshold"]} if extra else {}),
            "bone_ratios": [float(r) for r in bone_ratios],
            "recipe": {**recipe, "torch": str(torch.__version__)},
            "metrics": vals}


def save_snapshot(model, out_dir: Path, step: int) -> Path:
    """Write the network's state at ``step`` to ``out_dir/snapshots/step_NNNNNN.pt`` (atomically)."""
    path = Path(out_dir) / "snapshots" / f"step_{step:06d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "step": step}, tmp)
    os.replace(tmp, path)
    return path


def crop_head_loss(logits, is_left, is_hand, t: dict):
    """BCE on the crop head: left/right where known on hand crops, hand-present on all.

    Shapes: logits (B, 2), is_left (B,) in {0, 1, -1 unknown}, is_hand (B,) in {0, 1}.
    """
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss = t.get("lambda_hand", 0.1) * bce(logits[:, 1], is_hand)
    known = (is_left >= 0) & (is_hand > 0.5)
    if known.any():
        loss = loss + t.get("lambda_side", 0.1) * bce(logits[known, 0], is_left[known])
    return loss


def init_from(model, arch: dict, path, init: dict | None = None) -> None:
    """Copy a weights file's parameters into ``model`` (``init``: the file's network state,
    already read; None: read here); the file must hold the same network, except that a crop
    head the file lacks starts from scratch."""
    from .weights import WeightsError
    if init is None:
        init = init_weights_file(arch, path)
    try:
        missing, unexpected = model.load_state_dict(init, strict=False)
    except RuntimeError as exc:      # shapes differ: another size of network
        raise WeightsError(f"init_weights {path} does not fit arch {arch}: {str(exc)[:300]}") from None
    bad = [k for k in missing if not k.startswith("crop_head.")] + list(unexpected)
    if bad:
        raise WeightsError(f"init_weights {path} does not fit arch {arch}: "
                           f"missing or unexpected parameters {bad[:8]}")


def init_weights_state(cfg: dict, state: dict | None) -> dict | None:
    """The network state of ``train.init_weights``, checked to fit the config's arch as
    :func:`init_from` checks it, for a run to start from; None where there is none to read: no
    ``init_weights``, or a resumed run (``state``), whose checkpoint wins. Read before the
    renders, so that a missing or misfit file is not found hours later."""
    path = cfg["train"].get("init_weights")
    if not path or state is not None:
        return None
    init = init_weights_file(cfg["arch"], path)
    init_from(build_model_from_arch(cfg["arch"]), cfg["arch"], path, init)
    return init


def init_weights_file(arch: dict, path) -> dict:
    """The network state in the weights file ``path``, for a network of ``arch``. A file
    trained behind an input blur (``input_blur_sigma_px``, no parameters, so no state to
    mismatch) needs ``arch`` to name the blur: left out, the fine-tune silently trained and
    shipped without the filter its starting weights expect."""
    from .weights import WeightsError, load_weights
    model = load_weights(path).model
    sigma_px = float(getattr(model, "input_blur_sigma_px", 0.0))
    if sigma_px > 0 and "input_blur_sigma_px" not in arch:
        raise WeightsError(f"init_weights {path} was trained behind a {sigma_px:g} px input blur (its "
                           "arch.input_blur_sigma_px), which the config's arch leaves out: set "
                           f"arch.input_blur_sigma_px to {sigma_px:g} to keep it, or to 0 to fine-tune without it")
    return model.state_dict()


def synth_bone_ratios(synth) -> np.ndarray:
    """Bone ratios of the training hands (median over up to 2000 samples)."""
    n = min(len(synth), 2000)
    idx = np.linspace(0, len(synth) - 1, n).astype(int)
    P = np.stack([np.asarray(synth[i]["joints_3d_mm"], dtype=np.float64) for i in idx])
    return geo.bone_ratios_from_poses(P)


def real_validation_notice(cfg: dict) -> str:
    """One line on where real validation reads from, or why there is none: ``val_real.path`` is
    relative to the working directory, and a run started elsewhere would otherwise go hours
    without the figure its user expects."""
    path = cfg.get("val_real", {}).get("path")
    if not path:
        return "real validation: off (val_real.path is null)"
    where = Path(path).resolve()
    if not (where / "annotations.json").is_file():
        return (f"real validation: off, no {where / 'annotations.json'} (val_real.path {path!r} is "
                f"relative to the working directory {Path.cwd()})")
    return f"real validation: {where}"


def validate(model, val_synth, cfg, bone_ratios, device) -> dict:
    vals = {}
    if val_synth is not None:
        vals.update(eval_crops(model, val_synth, device))
    path = cfg.get("val_real", {}).get("path")
    if path and Path(path, "annotations.json").exists():
        try:
            vals.update(_validate_real(model, path, cfg, bone_ratios, device))
        except Exception as exc:  # a measurement must never stop a training run
            print(f"real validation skipped: {type(exc).__name__}: {exc}", flush=True)
    return vals


def _validate_real(model, path, cfg, bone_ratios, device) -> dict:
    from .estimator import HandPoseEstimator
    from .evaluate import evaluate_folder
    est = HandPoseEstimator.from_model(model, {"bone_ratios": list(bone_ratios)}, device=str(device))
    model.eval()
    try:
        rep = evaluate_folder(est, path, limit=cfg["val_real"].get("limit") or None, progress=False)
    finally:
        model.train()
    return {"val_real_2d_px": rep["summary"]["mean_error_2d_px"],
            "val_real_pa_mpjpe_mm": rep["summary"]["pa_mpjpe_mm"]}


def loader_error_text(exc: BaseException) -> str | None:
    """The original message of ``exc`` where a DataLoader worker raised it (an extra dataset's
    image found corrupt mid-run, a shard gone), else None. torch re-raises a worker's error
    as its type with the worker's whole traceback as the message: that is cut back to the
    traceback's last line, the original message."""
    text = str(exc)
    module = type(exc).__module__
    qualified = f"{'' if module == 'builtins' else module + '.'}{type(exc).__qualname__}: "
    if text.startswith(f"Caught {type(exc).__name__} in DataLoader worker") and qualified in text:
        return text.rsplit(qualified, 1)[1].strip()
    return None


def read_config(path: Path) -> dict:
    """The built-in defaults updated with the YAML config ``path`` (not yet checked: see
    ``check_config``); a missing, unparsable or non-mapping file is a SystemExit naming it."""
    if not path.is_file():
        raise SystemExit(f"config file not found: {path}")
    try:
        user = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SystemExit(f"cannot parse config {path}: {exc}") from None
    if not isinstance(user, dict):
        raise SystemExit(f"config {path} must be a mapping of sections (arch:, data:, train:, ...), "
                         f"got a {type(user).__name__}")
    return deep_update(DEFAULT_CONFIG, user)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hand25d-train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, help="YAML config (default: built-in defaults)")
    ap.add_argument("--out", type=Path, required=True, help="run folder (re-run to resume)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config entry, e.g. --set train.max_steps=100")
    args = ap.parse_args(argv)
    cfg = read_config(args.config) if args.config else DEFAULT_CONFIG
    if args.out.exists() and not args.out.is_dir():
        raise SystemExit(f"--out {args.out} exists and is not a run folder")
    cfg = apply_overrides(copy.deepcopy(cfg), args.set)
    check_config(cfg, f"{args.config} with --set" if args.config and args.set else
                 str(args.config) if args.config else "--set")
    # before any work: the renderer's imports would fail deep inside the first render
    require_render_extra("hand25d-train")
    command = "hand25d-train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    # killed outright by SIGTERM, the run left its render workers to finish their shards as
    # orphans (tracebacks on a broken pipe) and said nothing of how to resume
    from ._signals import interrupt_on_termination
    interrupt_on_termination()
    from .data.public_datasets import DatasetError
    from .data.synthetic import CacheError
    from .weights import WeightsError
    try:
        # all read before the renders, which can take hours: a broken checkpoint, other
        # settings than the run's, a missing or misfit init_weights, an unreadable extra dataset
        state = resume_state(args.out, cfg)
        init = init_weights_state(cfg, state)
        extras = [build_extra_source(spec) for spec in cfg["data"].get("extra", [])]
        train(cfg, args.out, command, state=state, extras=extras, init=init)
    except (WeightsError, DatasetError, CacheError) as exc:
        raise SystemExit(f"hand25d-train: {loader_error_text(exc) or exc}") from None
    except OSError as exc:      # a read-only or full disk, a file where a folder goes
        # one from a loader worker has lost its strerror and filename; its original message has both
        text = loader_error_text(exc) or f"{exc.strerror or exc}: {exc.filename or args.out}"
        raise SystemExit(f"hand25d-train: {text}") from None
    except KeyboardInterrupt:
        if (args.out / "last.pt").is_file():
            print(f"hand25d-train: interrupted; the same command resumes from {args.out / 'last.pt'} "
                  "(its last checkpoint)", file=sys.stderr)
        else:   # in the renders (hours on a CPU) or the first steps: finished shards stay cached
            print("hand25d-train: interrupted before its first checkpoint; the same command starts "
                  "the run over, keeping the renders already cached", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
