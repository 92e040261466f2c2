"""Export the whole network, latent 2.5D head included, to TorchScript and ONNX.

Both exported models take (B, 3, S, S) float RGB in [0, 1] and return
(uv_px (B, 21, 2), z_rel_norm (B, 21), confidence (B, 21)); the crop head's
left-hand and hand-present logits are not part of the export.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ._checks import require_extra
from .weights import WeightsError, load_weights


def export_torchscript(model: torch.nn.Module, path, input_size: int) -> Path:
    """Trace ``model`` (eval mode) to a TorchScript file."""
    model = model.eval()
    example = torch.rand(1, 3, input_size, input_size)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    path = Path(path)
    traced.save(str(path))
    return path


def export_onnx(model: torch.nn.Module, path, input_size: int, opset: int = 17) -> Path:
    """Export ``model`` to ONNX with a dynamic batch dimension."""
    model = model.eval()
    example = torch.rand(1, 3, input_size, input_size)
    path = Path(path)
    torch.onnx.export(model, (example,), str(path), input_names=["image"],
                      output_names=["uv_px", "z_rel_norm", "confidence"],
                      dynamic_axes={"image": {0: "batch"}, "uv_px": {0: "batch"},
                                    "z_rel_norm": {0: "batch"}, "confidence": {0: "batch"}},
                      opset_version=opset, dynamo=False)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hand25d-export", description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weights file (default: the bundled weights)")
    ap.add_argument("--torchscript", type=Path, help="output .ts/.pt file")
    ap.add_argument("--onnx", type=Path, help="output .onnx file")
    args = ap.parse_args(argv)
    if not (args.torchscript or args.onnx):
        ap.error("give --torchscript and/or --onnx")
    for option, path in (("--torchscript", args.torchscript), ("--onnx", args.onnx)):
        if path is not None and path.is_dir():
            ap.error(f"{option} {path} is a folder; give the file to write")
    try:
        if args.onnx:
            require_extra("export", "onnx")
        loaded = load_weights(args.weights)
    except ModuleNotFoundError as exc:
        raise SystemExit(f"hand25d-export: --onnx: {exc}") from None
    except WeightsError as exc:
        raise SystemExit(f"hand25d-export: {exc}") from None
    for path in (args.torchscript, args.onnx):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    size = int(loaded.meta.get("input_size", loaded.model.input_size))
    if args.torchscript:
        print("wrote", export_torchscript(loaded.model, args.torchscript, size))
    if args.onnx:
        print("wrote", export_onnx(loaded.model, args.onnx, size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
