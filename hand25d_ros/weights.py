"""Weights files: a state dict that carries its own architecture and metadata.

A weights file is ``torch.save`` of a plain dict::

    {"format": "hand25d_ros.weights", "version": 1,
     "arch": {"name": "small", ...build_model overrides...},
     "state_dict": {...},
     "meta": {"input_size": 128, "keypoint_names": [...], "bone_ratios": [...],
              "recipe": {...}, "metrics": {...}}}

It loads with ``torch.load(weights_only=True)`` (no pickled code runs) and is
checked against this package's keypoint order before use.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from . import keypoints as kp
from .model import Hand25DNet, build_model_from_arch

FORMAT = "hand25d_ros.weights"
VERSION = 1
DEFAULT_WEIGHTS_NAME = "hand25d_small_synth.pt"


class WeightsError(RuntimeError):
    """A weights file that is missing, unreadable or does not fit this package."""


@dataclass
class LoadedWeights:
    model: Hand25DNet
    meta: dict = field(default_factory=dict)
    path: str = ""


def default_weights_path() -> Path:
    """Path of the weights bundled with the package."""
    return Path(str(resources.files("hand25d_ros") / "weights" / DEFAULT_WEIGHTS_NAME))


def _plain(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def write_blob(path, fmt: str, version: int, arch: dict, model: torch.nn.Module, meta: dict) -> None:
    """torch.save a weights dict atomically (tmp file + rename), metadata as plain JSON types
    so that the file loads with weights_only=True."""
    meta = json.loads(json.dumps(dict(meta or {}), default=_plain))
    blob = {"format": fmt, "version": version, "arch": dict(arch),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def _load_failure(exc: Exception) -> str:
    """torch.load's complaint, short: its first line, and not its advice to load unsafely."""
    text = str(exc).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:   # the reason is after torch's paragraph on weights_only=False
        text = text.split(marker, 1)[1].strip()
    first = text.splitlines()[0].strip() if text else ""
    return f"{type(exc).__name__}: {first[:200]}{'...' if len(first) > 200 else ''}"


def read_checkpoint(path: Path, keys: tuple, kind: str) -> dict:
    """A trainer's ``last.pt`` (a pickled dict with optimiser state, not a weights file, so not
    loaded weights-only) holding ``keys``; WeightsError names the file and the problem."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch's many ways to fail on a broken file
        raise WeightsError(f"cannot resume from {path}: unreadable or corrupt ({_load_failure(exc)}); "
                           "delete it to start the run over, or use another --out") from None
    missing = [k for k in keys if k not in state] if isinstance(state, dict) else list(keys)
    if missing:
        raise WeightsError(f"cannot resume from {path}: not a {kind} checkpoint (no {', '.join(missing)}); "
                           "delete it to start the run over, or use another --out")
    return state


def _is_torchscript_archive(path: Path) -> bool:
    # torch.load refuses these weights-only with a paragraph about unsafe loading and a warning
    # to call torch.jit.load; an export passed as weights (both may end in .pt) needs neither
    try:
        with zipfile.ZipFile(path) as z:
            return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_blob(path: Path, fmt: str, version: int, map_location="cpu") -> dict:
    """Read a weights dict written by :func:`write_blob`; WeightsError names the file and the problem."""
    if path.is_dir():
        raise WeightsError(f"{path} is a folder; give the weights file (.pt) in it")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if _is_torchscript_archive(path):
        raise WeightsError(f"{path} is a TorchScript model (as hand25d-export writes), not a hand25d_ros "
                           "weights file: give the weights file (.pt) it was exported from")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path}: not a hand25d_ros weights file "
                           f"or corrupt ({_load_failure(exc)})") from None
    if isinstance(blob, dict) and "format" not in blob and {"model", "opt", "step"} <= blob.keys():
        # the run folder's other .pt: the likeliest wrong file, and its tag None says nothing
        raise WeightsError(f"{path} is a training checkpoint (the trainer's last.pt, to resume from), not a "
                           "weights file: give the one its run writes beside it when it ends (hand25d-train: weights.pt, "
                           "hand25d-train-detector: detector.pt)")
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        tag = blob.get("format") if isinstance(blob, dict) else None
        raise WeightsError(f"{path} is not a hand25d_ros weights file of kind {fmt!r} (format tag {tag!r})")
    if blob.get("version") != version:
        raise WeightsError(f"{path} has weights format version {blob.get('version')}, "
                           f"this package reads version {version}")
    return blob


def save_weights(model: Hand25DNet, path, arch: dict, meta: dict | None = None) -> None:
    """Write ``model`` with its architecture and metadata; atomic (tmp file + rename).

    Args:
        model: the network.
        path: output file.
        arch: ``{"name": <ARCHS key>, **build_model overrides}`` that rebuilds ``model``.
        meta: free-form metadata; input size, keypoint order and root are added.
    """
    meta = dict(meta or {})
    meta.setdefault("input_size", model.input_size)
    meta.setdefault("keypoint_names", list(kp.KEYPOINT_NAMES))
    meta.setdefault("root", kp.ROOT)
    meta.setdefault("scale_bone", list(kp.SCALE_BONE))
    write_blob(path, FORMAT, VERSION, arch, model, meta)


def load_weights(path=None, map_location="cpu") -> LoadedWeights:
    """Load a weights file (None = the bundled default) and rebuild its network.

    Raises:
        WeightsError: naming the file and what is wrong with it.
    """
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file() and path == default_weights_path():
        raise WeightsError(
            f"no bundled default weights at {path}: this install ships without trained weights. "
            "Train them with `hand25d-train` or pass weights=<path to a .pt file>.")
    blob = read_blob(path, FORMAT, VERSION, map_location)
    meta = blob.get("meta", {})
    names = meta.get("keypoint_names")
    if names is not None and tuple(names) != kp.KEYPOINT_NAMES:
        raise WeightsError(f"{path} was trained with a different keypoint order: {names}")
    arch = blob.get("arch", {})
    try:
        model = build_model_from_arch(arch)
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:
        name = arch.get("name", "small") if isinstance(arch, dict) else arch
        raise WeightsError(f"{path} does not fit the network it names ({name!r}): "
                           f"{type(exc).__name__}: {str(exc)[:300]}") from None
    model.eval()
    return LoadedWeights(model=model, meta=meta, path=str(path))
