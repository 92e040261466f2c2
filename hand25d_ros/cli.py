"""hand25d: run the estimator offline on images and videos (no ROS needed).

    hand25d image photo.jpg more/ --out results/      # JSON + overlays per image, every hand
    hand25d video clip.mp4 --out results/             # tracked hands: overlay video + JSON lines
    hand25d video 0 --preview                         # webcam 0
    hand25d bag in_bag --out out_bag --image-topic /camera/color/image_raw   # ROS 2 bag

Intrinsics: ``--calib camera.yaml`` (camera_info_manager format) or a guess from
``--hfov-deg`` (said loudly: metric depth from a guessed focal length is a guess).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ._checks import POSITIVE_NUMBER, argparse_number
from ._signals import interrupt_on_termination
from .crop import DEFAULT_TTA, HAND_SIDES, TTA_MODES
from .draw import draw_skeleton
from .image_files import read_photo, write_image_file
from .intrinsics import Calibration, K_from_fov, load_camera_yaml, upright_intrinsics

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# what a folder's images may be called; files named directly are tried whatever their name
READ_EXTS = IMAGE_EXTS | {".jpe", ".jfif", ".gif"}
# output names longer than this (clashing inputs are named by their whole path) are shortened
MAX_STEM_CHARS = 120


DRAW_CONFIDENCE_HELP = "keypoints of a lower confidence are not drawn in the overlay"


def _warn(msg: str) -> None:
    print(f"hand25d: WARNING: {msg}", file=sys.stderr)


def _calibration(args, width: int, height: int, orientation: int = 1) -> Calibration:
    """The intrinsics of a ``width`` x ``height`` image as shown (upright); ``orientation`` is
    its EXIF orientation, which OpenCV applied when reading it. Raises ValueError when the
    calibration cannot describe it."""
    if not args.calib:
        return Calibration(K=K_from_fov(width, height, args.hfov_deg), source=f"guess: {args.hfov_deg} deg hfov")
    cal = args.calibration
    sensor = (height, width) if orientation in (6, 8) else (width, height)
    if cal.width and (cal.width, cal.height) != sensor:
        turned = f" (an EXIF-rotated {sensor[0]}x{sensor[1]} photo)" if orientation != 1 else ""
        raise ValueError(f"calibration {args.calib} is for {cal.width}x{cal.height} images, got "
                         f"{width}x{height}{turned}")
    if orientation == 1:
        return cal
    if cal.D.size >= 4 and cal.distortion_model != "equidistant" and np.any(cal.D[2:4]):
        raise ValueError(f"an EXIF-rotated photo with the tangential distortion of {args.calib}: rotate the "
                         "photo's pixels or give a calibration without it")
    K = upright_intrinsics(cal.K, sensor[0], sensor[1], orientation)
    return Calibration(K=K, D=cal.D, distortion_model=cal.distortion_model, width=width, height=height,
                       source=f"{cal.source}, turned to the photo's EXIF orientation {orientation}")


def _opencv_path(path) -> str:
    """``path`` for OpenCV's video functions, which crash the process on a name that is not
    UTF-8 (they cannot be given bytes, as images can be decoded from them)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SystemExit(f"hand25d: {text.encode('utf-8', 'surrogateescape')!r} is not a UTF-8 name, which OpenCV's "
                         "video functions cannot open; rename it") from None
    return text


def pose_to_json(pose, K=None, source: str | None = None, track_id: int | None = None) -> dict:
    """One hand as plain JSON types (2D in px, 3D in m, the left/right label when known)."""
    rec = {} if source is None else {"source": source}
    if track_id is not None:
        rec["id"] = int(track_id)
    rec.update({"valid": pose.valid, "mean_confidence": pose.mean_confidence,
                "is_left": pose.is_left, "left_prob": None if pose.left_prob is None else round(pose.left_prob, 4),
                "detection_score": None if pose.detection_score is None else round(pose.detection_score, 4),
                "hand_size_m": pose.hand_size_m,
                "box_px": [round(float(v), 2) for v in pose.roi],
                "keypoints_2d_px": np.round(pose.keypoints_2d, 3).tolist(),
                "keypoints_3d_m": np.round(pose.keypoints_3d, 5).tolist(),
                "confidence": np.round(pose.confidence, 4).tolist()})
    if K is not None:
        rec["K"] = np.asarray(K).tolist()
    return rec


def draw_hands(rgb, poses, min_confidence, labels=None):
    """The skeletons of several hands, each labelled (id, left/right) at its wrist."""
    out = rgb
    for j, pose in enumerate(poses):
        out = draw_skeleton(out, pose.keypoints_2d, pose.confidence, min_confidence)
        text = (labels[j] if labels else "") + ({True: " left", False: " right"}.get(pose.is_left, ""))
        if text.strip():
            u, v = pose.keypoints_2d[0]
            cv2.putText(out, text.strip(), (int(u) + 4, int(v) + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return out


def list_images(paths, prog: str = "hand25d", out_dir: Path | None = None) -> list[Path]:
    """Image files named directly or found (sorted; not in subfolders) in the named folders.
    A folder's hidden files (macOS' ``._*`` companions, unfinished ``.partial`` outputs) are
    not images, nor, in ``out_dir``, this command's own ``*_overlay`` images."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            mine = out_dir is not None and p.resolve() == Path(out_dir).resolve()
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in READ_EXTS and not q.name.startswith(".")
                          and q.is_file() and not (mine and q.stem.endswith("_overlay")))
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"{prog}: no such file or folder: {p}")
    if not out:
        raise SystemExit(f"{prog}: no images found")
    return list({q.resolve(): q for q in reversed(out)}.values())[::-1]   # a file named twice is one input


def output_stems(paths: list[Path]) -> list[str]:
    """A distinct output name for each input: its stem, or where stems clash (a/f.png and
    b/f.png, f.png and f.jpg) the path as given, so that no result overwrites another."""
    stems = [p.stem for p in paths]
    clash = {s for s in stems if stems.count(s) > 1}
    names: list[str] = []
    for s, p in zip(stems, paths):
        if s in clash:
            s = "__".join(q for q in p.parts if q not in (p.anchor, ".", "..")).replace(".", "_")
        if len(s) > MAX_STEM_CHARS:      # deep folders: the file system's 255-byte name limit
            s = f"{s[-(MAX_STEM_CHARS - 9):]}_{hashlib.sha1(s.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
        base, k = s, 1
        while s in names:
            s, k = f"{base}_{k}", k + 1
        names.append(s)
    return names


def _hands_in(est, rgb, cal, args) -> list:
    D = cal.D if cal.D.size else None
    if args.whole_image:
        return [est.estimate(rgb, cal.K, hand_size_m=args.hand_size_m, roi="image", D=D,
                             distortion_model=cal.distortion_model)]
    return [p for p in est.estimate_hands(rgb, cal.K, hand_size_m=args.hand_size_m, max_hands=args.max_hands,
                                          D=D, distortion_model=cal.distortion_model) if p.valid]


def cmd_image(args, est) -> int:
    from tqdm import tqdm
    if not args.calib:
        _warn(f"no --calib given: guessing intrinsics from a {args.hfov_deg} degree field of view; "
              "the 3D output's depth is only as good as that guess")
    paths = list_images(args.inputs, out_dir=args.out)
    stems = output_stems(paths)
    inputs = {p.resolve() for p in paths}
    for stem in stems:
        for out in (args.out / f"{stem}.json", args.out / f"{stem}_overlay.png"):
            if out.resolve() in inputs:
                raise SystemExit(f"hand25d: writing {out} would replace an input image; give another --out")
    unread = 0
    for path, stem in tqdm(list(zip(paths, stems)), unit="img", disable=args.quiet):
        try:
            bgr, orientation = read_photo(path)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            cal = _calibration(args, rgb.shape[1], rgb.shape[0], orientation)
        except ValueError as exc:
            _warn(f"cannot use image {path}: {exc}; skipped")
            unread += 1
            continue
        hands = _hands_in(est, rgb, cal, args)
        rec = {"source": str(path), "K": np.asarray(cal.K).tolist(), "intrinsics": cal.source,
               "hands": [pose_to_json(p) for p in hands]}
        # made for the first result: a run that writes nothing (no input readable) leaves no folder
        args.out.mkdir(parents=True, exist_ok=True)
        _write_atomic(args.out / f"{stem}.json", json.dumps(rec, indent=1))
        overlay = draw_hands(rgb, hands, args.min_confidence)
        tmp = args.out / f".{stem}_overlay.partial.png"
        write_image_file(tmp, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        tmp.replace(args.out / f"{stem}_overlay.png")
    if unread == len(paths):
        raise SystemExit(f"hand25d: none of the {len(paths)} images could be read; nothing written")
    print(f"wrote results for {len(paths) - unread} of {len(paths)} images to {args.out}")
    # a batch with unreadable inputs is not a clean success, for scripts that check
    return 1 if unread else 0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)


def _check_preview() -> None:
    """--preview needs a window; headless OpenCV (what setup installs) has none."""
    gui = [line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith("GUI:")]
    if gui and gui[0].upper() == "NONE":
        raise SystemExit("hand25d: --preview needs OpenCV with a GUI (pip install opencv-python in place of "
                         "opencv-python-headless); --out writes an overlay video instead")
    try:
        cv2.namedWindow("hand25d")
    except cv2.error as exc:
        raise SystemExit(f"hand25d: --preview cannot open a window (no display?): {exc.err}") from None


# fps a video header may plausibly state; outside it (0, 1e6) the frames are timed at 30
VIDEO_FPS_RANGE = (1.0, 1000.0)
# unreadable frames in a row after which a video counts as ended (a truncated file)
MAX_UNREADABLE_FRAMES = 30


class VideoFrames:
    """The frames of a video file or webcam, each with its time (s): the container's timestamps
    where it has them (a recording with dropped frames has gaps a frame count does not show),
    else the frame count over the header's fps; a webcam's frames by the clock. A frame that
    cannot be decoded is skipped and counted (OpenCV stopped at the first one)."""

    def __init__(self, cap, live: bool):
        self.cap, self.live = cap, live
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps_ok = bool(math.isfinite(fps) and VIDEO_FPS_RANGE[0] <= fps <= VIDEO_FPS_RANGE[1])
        self.header_fps = fps
        self.fps = fps if self.fps_ok else 30.0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.total = int(count) if not live and math.isfinite(count) and count > 0 else None
        self.read, self.skipped, self._first_t, self._last_t, self._t0 = 0, 0, None, None, time.monotonic()

    def next(self):
        """(BGR frame, t_s), or None at the end."""
        misses = 0
        while True:
            ok, bgr = self.cap.read()
            if ok:
                break
            misses += 1
            # only a file can have more frames after one that does not decode
            if self.live or self.total is None or self.read + self.skipped + misses >= self.total \
                    or misses >= MAX_UNREADABLE_FRAMES:
                return None
        self.skipped += misses
        self.read += 1
        if self.live:
            t = time.monotonic() - self._t0
        else:
            t = round(self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, 6)   # ms in the container
            step = 1.0 / self.fps
            if not (math.isfinite(t) and t >= 0 and (self._last_t is None or t > self._last_t)):
                t = 0.0 if self._last_t is None else self._last_t + step
        self._last_t = t
        if self._first_t is None:
            self._first_t = t
        return bgr, t

    def shortfall(self) -> int:
        """Frames the header announced that never decoded (the end of a truncated file); frames
        the recording dropped (a gap in its timestamps, which the header counts) are not lost."""
        if self.total is None or self._last_t is None:
            return 0
        spanned = round((self._last_t - self._first_t) * self.fps) + 1 if self.fps_ok else 0
        return max(0, self.total - max(self.read + self.skipped, spanned))


def cmd_video(args, est) -> int:
    if not args.out and not args.preview:
        raise SystemExit("hand25d video: nothing to do: give --out FOLDER (overlay video and JSON lines) "
                         "and/or --preview")
    if args.preview:
        _check_preview()
    src = int(args.input) if args.input.isdigit() else args.input
    if not isinstance(src, int) and not Path(src).is_file():
        raise SystemExit(f"hand25d: no such video file: {src}")
    cap = cv2.VideoCapture(src if isinstance(src, int) else _opencv_path(src))
    video = VideoFrames(cap, live=isinstance(src, int))
    first = video.next()
    if first is None:
        if isinstance(src, int):   # a webcam index: "broken file or unsupported codec" sent users looking for a file
            raise SystemExit(f"hand25d: cannot read camera {src}: "
                             + ("it gave no frame" if cap.isOpened() else
                                "no such device, or it is in use or not supported by this OpenCV build"))
        raise SystemExit(f"hand25d: cannot read video {src} (broken file or unsupported codec)")
    bgr, t_s = first
    h, w = bgr.shape[:2]
    try:
        cal = _calibration(args, w, h)
    except ValueError as exc:
        raise SystemExit(f"hand25d: {exc}") from None
    if not args.calib:
        _warn(f"no --calib given: guessing intrinsics from a {args.hfov_deg} degree field of view")
    if not video.fps_ok and not isinstance(src, int):
        _warn(f"the video's header states {video.header_fps:g} frames/s: the overlay is written at 30, and "
              "frames without a container timestamp are timed at 30 frames/s")
    from .tracking import HandTracker
    try:
        tracker = HandTracker(est, max_hands=args.max_hands, smoothing=not args.no_smoothing)
    except ValueError as exc:
        raise SystemExit(f"hand25d: {exc}") from None
    D = cal.D if cal.D.size else None
    writer = jsonl = None
    if args.out:
        stem = "webcam" if isinstance(src, int) else Path(src).stem
        tmp_video = args.out / f".{stem}_overlay.partial.mp4"
        tmp_jsonl = args.out / f".{stem}.partial.jsonl"
        video_path = _opencv_path(tmp_video)      # refused before anything is made
        args.out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm
    bar = tqdm(total=video.total, unit="frame", disable=args.quiet)
    i = 0
    try:
        # made inside the try: a stop that came between making the part files and the loop
        # (the progress bar's import took that long) left them behind
        if args.out:
            writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"), video.fps, (w, h))
            if not writer.isOpened():
                raise SystemExit(f"hand25d: cannot open a video writer for {tmp_video}")
            jsonl = open(tmp_jsonl, "w")
        while True:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if args.whole_image:
                hands = [(0, p) for p in _hands_in(est, rgb, cal, args)]
            else:
                hands = [(t.track_id, t.pose) for t in tracker.update(rgb, cal.K, t_s, args.hand_size_m, D,
                                                                       distortion_model=cal.distortion_model)]
            overlay = cv2.cvtColor(draw_hands(rgb, [p for _, p in hands], args.min_confidence,
                                              [f"#{k}" for k, _ in hands]), cv2.COLOR_RGB2BGR)
            if writer:
                writer.write(overlay)
                jsonl.write(json.dumps({"frame": i, "t_s": t_s, "source": str(src),
                                        "hands": [pose_to_json(p, track_id=k) for k, p in hands]}) + "\n")
            if args.preview:
                cv2.imshow("hand25d", overlay)
                if cv2.waitKey(1) & 0xFF == 27:
                    break
            i += 1
            bar.update(1)
            frame = video.next()
            if frame is None:
                break
            bgr, t_s = frame
    except BaseException:
        # nothing half-written is left behind, however far the files were made
        if writer:
            writer.release()
        if jsonl:
            jsonl.close()
        if args.out:
            tmp_video.unlink(missing_ok=True)
            tmp_jsonl.unlink(missing_ok=True)
        raise
    finally:
        cap.release()
        bar.close()
    if writer:
        writer.release()
        jsonl.close()
        tmp_video.rename(args.out / f"{stem}_overlay.mp4")
        tmp_jsonl.rename(args.out / f"{stem}.jsonl")
        print(f"wrote {i} frames to {args.out}")
    # a header's count can be one off (estimated from the duration): more is frames lost
    lost = video.skipped + (video.shortfall() if video.shortfall() > 1 else 0)
    if lost:
        _warn(f"{lost} of the {video.total} frames the video's header announces could not be decoded "
              f"({video.skipped} skipped in the stream, {video.shortfall()} missing at its end): a damaged or "
              "truncated file")
        return 1
    return 0


def cmd_bag(args, est) -> int:
    """A ROS 2 bag in, a new bag with the inputs and the node's outputs out (hand25d_ros.bag)."""
    from .bag import BagError, MarkerStyle, convert
    from .tracking import HandTracker
    from .weights import WeightsError
    cal = args.calibration
    try:
        tracker = HandTracker(est, max_hands=args.max_hands, min_confidence=args.confidence_threshold,
                              smoothing=not args.no_smoothing, min_cutoff_hz=args.smoothing_min_cutoff_hz,
                              beta=args.smoothing_beta, max_gap_s=args.track_max_gap_s,
                              follow_hand=not args.no_follow_hand)
    except ValueError as exc:
        raise SystemExit(f"hand25d: {exc}") from None
    try:
        summary = convert(args.input, args.out, tracker, image_topic=args.image_topic,
                          camera_info_topic=args.camera_info_topic, calibration=cal, hfov_deg=args.hfov_deg,
                          intrinsics_source=args.intrinsics_source, sync_tolerance_s=args.sync_tolerance_s,
                          hand_size_m=args.hand_size_m, storage=args.storage, overwrite=args.overwrite,
                          namespace=args.namespace, frame_prefix=args.frame_prefix,
                          camera_frame_id=args.camera_frame_id,
                          marker_style=MarkerStyle(lifetime_s=args.marker_lifetime_s), progress=not args.quiet)
    except (BagError, WeightsError) as exc:   # the tracker may load more weights on first use
        raise SystemExit(f"hand25d: {exc}") from None
    print(summary.describe())
    return 0


def add_bag_parser(sub, common) -> None:
    from .bag import DEFAULT_FRAME_PREFIX, DEFAULT_NAMESPACE, INTRINSICS_SOURCES, STORAGES
    p = sub.add_parser("bag", parents=[common], help="a ROS 2 bag (mcap or sqlite3) -> a bag with the node's outputs")
    p.add_argument("input", help="bag folder, .mcap or .db3 file")
    p.add_argument("--out", type=Path, required=True, help="bag folder to create")
    p.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    p.add_argument("--camera-info-topic", default=None,
                   help="CameraInfo topic (default: the image topic's sibling camera_info)")
    p.add_argument("--intrinsics-source", choices=INTRINSICS_SOURCES, default="rectified",
                   help="CameraInfo P for a rectified image, or K and D for a raw one (as the node)")
    p.add_argument("--sync-tolerance-s", type=NON_NEGATIVE, default=0.02, help="pair images and CameraInfo within this")
    p.add_argument("--max-hands", type=HANDS, default=2, help="most hands followed (1-10)")
    p.add_argument("--confidence-threshold", type=UNIT, default=0.05,
                   help="hands of a lower mean keypoint confidence are not written (the node's confidence_threshold)")
    p.add_argument("--no-smoothing", action="store_true", help="no One Euro filtering of the 3D keypoints")
    # the node's tracker parameters, so that a live run's settings can be replayed
    p.add_argument("--smoothing-min-cutoff-hz", type=POSITIVE_NUMBER, default=1.5,
                   help="One Euro cut-off at rest (the node's smoothing_min_cutoff_hz)")
    p.add_argument("--smoothing-beta", type=NON_NEGATIVE, default=0.5,
                   help="One Euro speed coefficient, s/m (the node's smoothing_beta)")
    p.add_argument("--track-max-gap-s", type=NON_NEGATIVE, default=0.5,
                   help="a longer gap between stamps finds the hands afresh (the node's track_max_gap_s)")
    p.add_argument("--no-follow-hand", action="store_true",
                   help="read every frame's hand afresh (the node's follow_hand false)")
    p.add_argument("--storage", choices=STORAGES, default=None, help="output storage (default: the input's)")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="namespace of the output topics")
    p.add_argument("--frame-prefix", default=DEFAULT_FRAME_PREFIX,
                   help="TF frames <prefix><id>_palm, ... (default: the node's for --namespace: hand_ for "
                   "/hand25d, cam2/hand_ for /cam2/hand25d)")
    p.add_argument("--camera-frame-id", default="", help="frame of the outputs (default: the image's)")
    p.add_argument("--marker-lifetime-s", type=NON_NEGATIVE, default=0.5)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output bag")


NON_NEGATIVE = argparse_number(float, 0.0, what="a number >= 0")
UNIT = argparse_number(float, 0.0, 1.0, what="a number in [0, 1]")
FOV_DEG = argparse_number(float, 0.0, 180.0, lo_open=True, hi_open=True, what="degrees in (0, 180)")
HANDS = argparse_number(int, 1, 10, what="a whole number of hands, 1-10")


def _frame_options(p) -> None:
    p.add_argument("--max-hands", type=HANDS, default=2, help="most hands found per frame (1-10)")
    p.add_argument("--whole-image", action="store_true",
                   help="each image already is a hand crop (no hand finding)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hand25d", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--weights", default=None, help="weights file (default: the bundled weights)")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda")
    common.add_argument("--tta", choices=TTA_MODES, default=DEFAULT_TTA,
                        help="test-time augmentation: flip (default) averages each crop with its mirror "
                             "image; none runs the network once per crop (half the time); flip_rotate also runs copies "
                             "rotated by +-15 degrees (lower error, three times the time of flip)")
    common.add_argument("--hand-side", choices=HAND_SIDES, default="auto",
                        help="auto (default): read each hand from the image; left or right: every hand is "
                             "that one (one known hand): the --tta views on it are kept, and a crop that no "
                             "view shows as that hand runs on 8 more views")
    common.add_argument("--calib", type=Path, help="camera calibration YAML (camera_info_manager format)")
    common.add_argument("--hfov-deg", type=FOV_DEG, default=None,
                        help="field-of-view guess when no --calib (default 60); bag: also for an uncalibrated "
                             "CameraInfo (K all zeros), which is skipped without it, as the node does")
    common.add_argument("--hand-size-m", type=POSITIVE_NUMBER, default=None, help="wrist to index-MCP length, metres")
    common.add_argument("--quiet", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("image", parents=[common], help="images or folders of images")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--min-confidence", type=UNIT, default=0.2, help=DRAW_CONFIDENCE_HELP)
    _frame_options(p)
    p = sub.add_parser("video", parents=[common], help="a video file or a webcam index")
    p.add_argument("input")
    p.add_argument("--out", type=Path)
    p.add_argument("--preview", action="store_true", help="show a live window (needs a display)")
    p.add_argument("--min-confidence", type=UNIT, default=0.2, help=DRAW_CONFIDENCE_HELP)
    p.add_argument("--no-smoothing", action="store_true", help="no One Euro filtering of the 3D keypoints")
    _frame_options(p)
    add_bag_parser(sub, common)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # only bag needs to know whether --hfov-deg was given (an uncalibrated CameraInfo is used
    # only then, as the node's hfov_deg); the others always guess without --calib
    if args.cmd != "bag" and args.hfov_deg is None:
        from .bag import DEFAULT_HFOV_DEG
        args.hfov_deg = DEFAULT_HFOV_DEG
    out = getattr(args, "out", None)
    if args.cmd != "bag" and out is not None and out.exists() and not out.is_dir():
        raise SystemExit(f"hand25d: --out {out} exists and is not a folder")
    try:   # a bad calibration file stops the run before any work, not at the first frame
        args.calibration = load_camera_yaml(args.calib) if args.calib else None
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"hand25d: {exc}") from None
    from .estimator import HandPoseEstimator
    from .weights import WeightsError
    try:
        est = HandPoseEstimator(weights=args.weights, device=args.device, tta=args.tta, hand_side=args.hand_side)
    except (WeightsError, RuntimeError, ValueError) as exc:
        raise SystemExit(f"hand25d: {exc}") from None
    interrupt_on_termination()
    try:
        return {"image": cmd_image, "video": cmd_video, "bag": cmd_bag}[args.cmd](args, est)
    except WeightsError as exc:       # the detector's weights load on first use
        raise SystemExit(f"hand25d: {exc}") from None
    except KeyboardInterrupt:         # what was being written is removed on the way out
        print(f"hand25d: interrupted{'' if args.cmd == 'image' else '; nothing written'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
