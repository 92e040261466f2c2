"""Export the whole network, latent 2.5D head included, to TorchScript and ONNX.

Both exported models take (B, 3, S, S) float RGB in [0, 1] and return
(uv_px (B, 21, 2), z_rel_norm (B, 21), confidence (B, 21)); the crop head's
left-hand and hand-present logits are not part of the export. Each file carries
:func:`export_metadata` as JSON: the TorchScript file as its extra file
``hand25d_meta.json``, the ONNX file as its metadata property ``hand25d_meta``.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import torch

from . import keypoints as kp
from ._checks import require_extra
from ._files import write_replacing
from ._signals import interrupt_on_termination
from .geometry import ROBUST_BONES
from .weights import WeightsError, default_weights_path, load_weights


def _write_atomic(path, data: bytes) -> Path:
    # The model is serialised in memory first and renamed into place, so that a failed or
    # interrupted write leaves no truncated model, nor destroys an earlier export of that name.
    return write_replacing(path, lambda tmp: tmp.write_bytes(data))


META_NAME = "hand25d_meta"


def export_metadata(meta: dict | None, input_size: int) -> dict:
    """What a user of an exported network needs beside it, from its weights' metadata: the
    input convention, the keypoint order, and the bone ratios that the default (robust) root
    depth lifts with, which exist nowhere but in the weights file."""
    meta = dict(meta or {})
    out = {"input_size": int(input_size),
           "input": "image (B, 3, S, S) float32 RGB in [0, 1], channels first; the mean/std "
                    "normalisation is inside the network",
           "outputs": {"uv_px": "(B, 21, 2) keypoints in input pixels, pixel centres at whole numbers",
                       "z_rel_norm": "(B, 21) depth relative to the root, in units of the scale bone",
                       "confidence": "(B, 21) heatmap mass near each keypoint, 0-1"},
           "keypoint_names": list(meta.get("keypoint_names", kp.KEYPOINT_NAMES)),
           "root": meta.get("root", kp.ROOT),
           "scale_bone": list(meta.get("scale_bone", kp.SCALE_BONE))}
    if meta.get("bone_ratios") is not None:
        out["robust_bones"] = [list(b) for b in ROBUST_BONES]
        out["bone_ratios"] = list(meta["bone_ratios"])
    return out


def export_torchscript(model: torch.nn.Module, path, input_size: int, meta: dict | None = None) -> Path:
    """Trace ``model`` (eval mode) to a TorchScript file carrying :func:`export_metadata` of
    ``meta`` (the weights' metadata). Raises OSError when it cannot be written."""
    model = model.eval()
    example = torch.rand(1, 3, input_size, input_size)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={f"{META_NAME}.json": json.dumps(export_metadata(meta, input_size))})
    return _write_atomic(path, buf.getvalue())


class _ImageOnly(torch.nn.Module):
    """The network with the image as its one input. torch.onnx.export traces forward's
    defaults as inputs too, so ``crop_logits=False`` became a traced tensor that forward
    branches on, and every export warned that the trace "might not generalize to other
    inputs" (it did generalise, the flag being constant, but a user cannot tell that)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor):
        return self.net(image)


def export_onnx(model: torch.nn.Module, path, input_size: int, opset: int = 17, meta: dict | None = None) -> Path:
    """Export ``model`` to ONNX with a dynamic batch dimension, carrying :func:`export_metadata`
    of ``meta`` (the weights' metadata). Raises OSError when it cannot be written."""
    require_extra("export", "onnx")
    import onnx
    model = model.eval()
    example = torch.rand(1, 3, input_size, input_size)
    buf = io.BytesIO()
    torch.onnx.export(_ImageOnly(model), (example,), buf, input_names=["image"],
                      output_names=["uv_px", "z_rel_norm", "confidence"],
                      dynamic_axes={"image": {0: "batch"}, "uv_px": {0: "batch"},
                                    "z_rel_norm": {0: "batch"}, "confidence": {0: "batch"}},
                      opset_version=opset, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {META_NAME: json.dumps(export_metadata(meta, input_size))})
    return _write_atomic(path, proto.SerializeToString())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hand25d-export", description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weights file (default: the bundled weights)")
    ap.add_argument("--torchscript", type=Path, help="output .ts/.pt file")
    ap.add_argument("--onnx", type=Path, help="output .onnx file")
    args = ap.parse_args(argv)
    if not (args.torchscript or args.onnx):
        ap.error("give --torchscript and/or --onnx")
    outputs = [(option, path) for option, path in (("--torchscript", args.torchscript), ("--onnx", args.onnx))
               if path is not None]
    for option, path in outputs:
        if path.is_dir():
            ap.error(f"{option} {path} is a folder; give the file to write")
    # the weights are read before anything is written, so either mistake would go unnoticed:
    # the second export silently replacing the first, or the source weights overwritten
    if len(outputs) == 2 and args.torchscript.resolve() == args.onnx.resolve():
        ap.error(f"--torchscript and --onnx are the same file {args.onnx}; give each its own")
    weights = Path(args.weights) if args.weights is not None else default_weights_path()
    for option, path in outputs:
        if path.resolve() == weights.resolve():
            ap.error(f"{option} {path} is the weights file being exported; give another output file")
    try:
        if args.onnx:
            require_extra("export", "onnx")
        loaded = load_weights(args.weights)
    except ModuleNotFoundError as exc:
        raise SystemExit(f"hand25d-export: --onnx: {exc}") from None
    except WeightsError as exc:
        raise SystemExit(f"hand25d-export: {exc}") from None
    size = int(loaded.meta.get("input_size", loaded.model.input_size))
    written = []
    interrupt_on_termination()   # kill or timeout stop it as Ctrl-C does, saying what was written
    try:
        for option, path, export in (("--torchscript", args.torchscript, export_torchscript),
                                     ("--onnx", args.onnx, export_onnx)):
            if path is None:
                continue
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SystemExit(f"hand25d-export: cannot make the folder of {option} {path}: "
                                 f"{exc.strerror or exc}: {exc.filename}") from None
            try:
                written.append(export(loaded.model, path, size, meta=loaded.meta))
            except OSError as exc:
                raise SystemExit(f"hand25d-export: cannot write {option} {path}: {exc.strerror or exc}") from None
            print("wrote", written[-1], flush=True)
    except KeyboardInterrupt:   # the file being exported is not written (written whole or not at all)
        done = f"only {written[0]} was written" if written else "nothing written"
        print(f"hand25d-export: interrupted; {done}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
