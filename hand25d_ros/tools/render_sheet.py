"""hand25d-render-sheet: a contact sheet of synthetic samples with their labels drawn.

    python -m hand25d_ros.tools.render_sheet --out sheet.png --n 36 --seed 0
    python -m hand25d_ros.tools.render_sheet --out sheet.png --cache cache/synth   # from shards

Visible keypoints are filled, occluded ones hollow. Use it to look at what the
network learns from after changing the renderer.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from .._checks import WHOLE_AT_LEAST_1, WHOLE_NON_NEGATIVE, argparse_number, require_render_extra
from ..cli import IMAGE_EXTS
from ..image_files import write_image_file


def contact_sheet(samples, tile_px: int = 256, cols: int = 6) -> np.ndarray:
    """RGB grid of samples (dicts with image, joints_2d_px, visible)."""
    from ..draw import draw_skeleton
    tiles = []
    for s in samples:
        S = s["image"].shape[0]
        f = tile_px / S
        img = cv2.resize(s["image"], (tile_px, tile_px), interpolation=cv2.INTER_LINEAR)
        uv = (np.asarray(s["joints_2d_px"]) + 0.5) * f - 0.5
        tiles.append(draw_skeleton(img, uv, np.asarray(s["visible"], float), 0.5))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + cols], 1) for r in range(0, len(tiles), cols)]
    return np.concatenate(rows, 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hand25d-render-sheet", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output PNG")
    # checked as argparse reads them: --cols 0 was a ZeroDivisionError, --size 0 and --seed -1
    # tracebacks from the renderer, --tile 0 an OpenCV assertion, a negative --start drew from the end
    ap.add_argument("--n", type=WHOLE_AT_LEAST_1, default=36)
    # None: not given, so that --cache can refuse them (its renders have their own)
    ap.add_argument("--seed", type=WHOLE_NON_NEGATIVE, default=None, help="render seed (default 0)")
    ap.add_argument("--start", type=WHOLE_NON_NEGATIVE, default=0, help="first sample index")
    ap.add_argument("--size", type=argparse_number(int, 16, what="a crop size >= 16 px"), default=None,
                    help="crop size to render (px, default 128)")
    ap.add_argument("--tile", type=WHOLE_AT_LEAST_1, default=192, help="tile size in the sheet (px)")
    ap.add_argument("--cols", type=WHOLE_AT_LEAST_1, default=6)
    ap.add_argument("--cache", type=Path, help="draw from a shard folder (write_shards) instead of rendering")
    args = ap.parse_args(argv)
    if args.out.is_dir() or args.out.suffix.lower() not in IMAGE_EXTS:
        ap.error(f"--out {args.out}: give an image file to write ({', '.join(sorted(IMAGE_EXTS))})")
    # before the renders: a file where a folder goes was a traceback after them
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"hand25d-render-sheet: cannot write {args.out}: {exc.strerror}: {exc.filename}") from None
    if args.cache:
        given = [f"--{k}" for k in ("seed", "size") if getattr(args, k) is not None]
        if given:
            # a cache's renders were made with its own seed and crop size (its cache.json);
            # taking these silently drew a sheet of other renders than the user asked for
            ap.error(f"{' and '.join(given)} choose what to render; with --cache the cache's samples are drawn "
                     "as they were rendered (its seed and crop size are in its cache.json)")
        from ..data.synthetic import ShardDataset
        try:
            ds = ShardDataset(args.cache)
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"hand25d-render-sheet: {exc}") from None
        if args.start >= len(ds):
            raise SystemExit(f"hand25d-render-sheet: --start {args.start} is past the {len(ds)} samples "
                             f"in {args.cache}")
        samples = [ds[i] for i in range(args.start, min(len(ds), args.start + args.n))]
    else:
        require_render_extra("hand25d-render-sheet", "rendering ")
        from ..data.synthetic import SyntheticConfig, SyntheticHandGenerator
        gen = SyntheticHandGenerator(SyntheticConfig(crop_size_px=args.size or 128), args.seed or 0)
        samples = [gen.sample(i) for i in range(args.start, args.start + args.n)]
    sheet = contact_sheet(samples, tile_px=args.tile, cols=args.cols)
    try:
        write_image_file(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    except OSError as exc:
        raise SystemExit(f"hand25d-render-sheet: could not write {args.out}: {exc}") from None
    print(f"wrote {args.out} ({len(samples)} samples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
