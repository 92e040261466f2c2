"""Render the sample frames bundled with the package (hand25d_ros/samples/), or a
held-out synthetic test set in the same annotated-folder format.

    python -m hand25d_ros.tools.make_samples --out hand25d_ros/samples --n 8 --seed 7 --frame-size 640x480
    python -m hand25d_ros.tools.make_samples --out cache/synth_test --n 500 --seed 424242 --test-set

Writes frame_XX.png (RGB, 256 x 256 hand crops, or full camera frames with
``--frame-size``) and annotations.json with each frame's intrinsics and true keypoints,
so the demo can show its error as well as its output. A full frame is a procedural
indoor scene with the rendered hand (and forearm) composited in by its coverage mask,
unscaled at an integer offset, so its intrinsics are the crop's shifted by that offset
and the labels stay exact.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from .._checks import WHOLE_AT_LEAST_1, WHOLE_NON_NEGATIVE, argparse_number, require_render_extra
from ..data.hand_mesh import KNUCKLE_LABELS
from ..image_files import write_image_file


def _in_frame(s: dict, frame_size, rng, backgrounds) -> dict:
    """Composite a rendered crop into a W x H scene at an integer offset (labels stay exact)."""
    W, H = frame_size
    S = s["image"].shape[0]
    kind = ("room", "shelves", "person")[int(rng.integers(3))]
    bg = backgrounds.sample_background(rng, max(W, H), kind=kind)[:H, :W]
    x0, y0 = int(rng.integers(0, W - S + 1)), int(rng.integers(0, H - S + 1))
    frame = bg.copy()
    a = s["mask"][..., None]
    frame[y0:y0 + S, x0:x0 + S] = s["image"].astype(np.float32) / 255.0 * a + frame[y0:y0 + S, x0:x0 + S] * (1 - a)
    out = dict(s)
    out["image"] = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    T = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    out["K"] = T @ s["K"]
    out["joints_2d_px"] = s["joints_2d_px"] + (x0, y0)
    return out


# make_samples option (argparse dest) -> the SyntheticConfig field it sets
_CONFIG_OPTIONS = {"hand_texture": "hand_texture", "knuckle_labels": "knuckle_labels",
                   "thumb_tucked": "p_thumb_tucked", "thumb_on_tips": "p_thumb_on_tips"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    # checked as argparse reads them: --n -1 "wrote -1 frames" (none), --seed -1 was a traceback
    ap.add_argument("--n", type=WHOLE_AT_LEAST_1, default=8)
    ap.add_argument("--seed", type=WHOLE_NON_NEGATIVE, default=2026)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--test-set", action="store_true",
                    help="the training distribution (all orientations, occluders): a held-out synthetic test set")
    ap.add_argument("--hand-detail", type=argparse_number(float, 0.0, what="a strength >= 0"), default=None,
                    help="skin-detail strength (SyntheticConfig.hand_detail; default its default, 0: none)")
    ap.add_argument("--hand-texture", type=float, default=None,
                    help="randomised look of the hand layer, 0-1 (SyntheticConfig.hand_texture; default its "
                         "default, 0: off)")
    ap.add_argument("--legacy-look", action="store_true",
                    help="the backgrounds and skin hue from before SyntheticConfig.p_background_defocus, "
                         "fine_backgrounds and skin_hue_deg (synthetic.LEGACY_CONFIG), as cache/synth_test* were made")
    ap.add_argument("--knuckle-labels", choices=KNUCKLE_LABELS, default=None,
                    help="the finger MCP labels (SyntheticConfig.knuckle_labels; default its default, 'joint')")
    ap.add_argument("--families", default=None, metavar="NAME,...",
                    help="draw only these pose families (comma-separated, of pose_sampler.POSE_FAMILIES), "
                         "at their default relative weights: a held-out set of one kind of pose")
    ap.add_argument("--thumb-tucked", type=float, default=None, metavar="P",
                    help="how often a point or count pose holds its thumb over the curled fingers "
                         "(SyntheticConfig.p_thumb_tucked; default its default, 0)")
    ap.add_argument("--thumb-on-tips", type=float, default=None, metavar="P",
                    help="how often a point or count pose holds its bent fingers half-bent with the thumb tip on "
                         "one's DIP or tip (SyntheticConfig.p_thumb_on_tips; default its default, 0)")
    ap.add_argument("--frame-size", default=None, metavar="WxH",
                    help="write full camera frames of this size with the hand composited in")
    args = ap.parse_args(argv)
    frame_size = None
    if args.frame_size:
        try:
            frame_size = tuple(int(v) for v in args.frame_size.lower().split("x"))
            assert len(frame_size) == 2 and min(frame_size) > args.size
        except (ValueError, AssertionError):
            raise SystemExit(f"--frame-size must be WxH larger than --size {args.size}, got {args.frame_size!r}")
    # before any work: the first render would fail deep inside on its import
    require_render_extra("make_samples")
    from ..data import backgrounds
    from ..data.synthetic import LEGACY_CONFIG, SyntheticConfig, SyntheticHandGenerator
    overrides = {} if args.hand_detail is None else {"hand_detail": args.hand_detail}
    if args.legacy_look:
        overrides.update({k: v for k, v in LEGACY_CONFIG.items() if k != "hand_detail"})
    # the options that set one SyntheticConfig field each, where given
    overrides.update({field: getattr(args, option) for option, field in _CONFIG_OPTIONS.items()
                      if getattr(args, option) is not None})
    if args.families is not None:
        from ..data.pose_sampler import POSE_FAMILIES
        chosen = [f.strip() for f in args.families.split(",") if f.strip()]
        unknown = sorted(set(chosen) - set(POSE_FAMILIES))
        if unknown or not chosen:
            raise SystemExit(f"make_samples: --families {args.families!r}: choose from {', '.join(POSE_FAMILIES)}")
        # the others weighted 0; the chosen keep their defaults (None: pose_sampler.FAMILY_WEIGHTS)
        overrides["pose_family_weights"] = {f: 0.0 for f in POSE_FAMILIES if f not in chosen}
    try:
        if args.test_set:
            cfg = SyntheticConfig(crop_size_px=args.size, **overrides)
        else:
            # camera-facing hands without occluders: what a user holds up to a camera
            cfg = SyntheticConfig(crop_size_px=args.size, p_upright=1.0, p_occluder=0.0,
                                  p_motion_blur=0.0, crop_scale=(1.35, 1.5), **overrides)
    except ValueError as e:
        raise SystemExit(f"make_samples: {e}")
    gen = SyntheticHandGenerator(cfg, args.seed)
    try:
        _write(args, cfg, gen, frame_size, backgrounds)
    except OSError as exc:      # a file where the folder goes, no permission, a full disk
        raise SystemExit(f"make_samples: cannot write to {args.out}: {exc.strerror or exc}: "
                         f"{exc.filename or args.out}") from None
    print(f"wrote {args.n} frames to {args.out}")
    return 0


def frame_name(i: int, n: int) -> str:
    """The file name of frame ``i`` of ``n``, zero-padded so that names sort in frame order
    (frame_100 sorted before frame_11 with a fixed two digits; eight frames stay frame_00..07)."""
    return f"frame_{i:0{max(2, len(str(n - 1)))}d}.png"


def _write(args, cfg, gen, frame_size, backgrounds) -> None:
    """The frames and annotations.json; OSError where the folder cannot take them."""
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = _frames_written_before(args.out)
    frames = []
    for i in range(args.n):
        s = gen.sample(i, with_mask=frame_size is not None)
        if frame_size is not None:
            s = _in_frame(s, frame_size, np.random.default_rng((args.seed, 55, i)), backgrounds)
        name = frame_name(i, args.n)
        write_image_file(args.out / name, cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR))
        frames.append({"image": name, "K": np.round(s["K"], 6).tolist(),
                       "joints_3d_mm": np.round(s["joints_3d_mm"], 3).tolist(),
                       "joints_2d_px": np.round(s["joints_2d_px"], 3).tolist(),
                       "is_left": bool(s["is_left"])})
    (args.out / "annotations.json").write_text(json.dumps({"source": _source(args, cfg), "samples": frames},
                                                          indent=1))
    # a folder rendered again with fewer frames kept the rest, frames without annotations
    # that the demo (which takes every image of the folder) ran as if they belonged
    for name in earlier - {f["image"] for f in frames}:
        (args.out / name).unlink(missing_ok=True)


def _source(args, cfg) -> str:
    """What rendered the folder: the seed and every setting that differs from the defaults the
    bundled frames were made with, in annotations.json's ``source``."""
    parts = [f"hand25d_ros synthetic renderer, seed {args.seed}", f"hand_detail {cfg.hand_detail:g}"]
    if cfg.hand_texture:
        parts.append(f"hand_texture {cfg.hand_texture:g}")
    if args.legacy_look:
        parts.append("legacy look")
    if cfg.knuckle_labels != "joint":
        parts.append(f"knuckle_labels {cfg.knuckle_labels}")
    if args.families:
        parts.append(f"families {args.families}")
    parts += [f"{name} {getattr(cfg, name):g}" for name in ("p_thumb_tucked", "p_thumb_on_tips") if getattr(cfg, name)]
    return ", ".join(parts)


def _frames_written_before(folder: Path) -> set[str]:
    """The frames an earlier make_samples listed in the folder's annotations.json (only
    those: other files there are the user's)."""
    try:
        ann = json.loads((folder / "annotations.json").read_text())
        if not str(ann.get("source", "")).startswith("hand25d_ros synthetic renderer"):
            return set()
        names = {str(rec["image"]) for rec in ann["samples"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()
    return {n for n in names if Path(n).name == n and n.startswith("frame_") and n.endswith(".png")}


if __name__ == "__main__":
    raise SystemExit(main())
