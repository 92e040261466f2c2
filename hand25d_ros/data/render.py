"""Headless OpenGL rendering of meshes given in the camera optical frame (moderngl + EGL).

One GL context per process, created on the first render, so a renderer object can be
pickled into DataLoader / multiprocessing workers (the context is dropped and rebuilt).

Projection. ``K`` is an OpenCV intrinsic matrix for an image of ``W x H`` pixels, pixel
centres at integers (``hand25d_ros.crop``): ``u = (K[0] . P) / Z``, ``v = (K[1] . P) / Z``.
The clip matrix maps ``x_ndc = 2 (u + 0.5) / W - 1`` and ``y_ndc = 2 (v + 0.5) / H - 1``.
OpenGL's framebuffer row 0 is its *bottom* row (``y_ndc = -1``) and ``read()`` returns
rows bottom-up; mapping image row ``v = 0`` to ``y_ndc = -1`` makes the first row read
back image row 0, i.e. the rows come out top-down with no flip. (The triangle winding is
mirrored by this, so back-face culling stays off.) ``test_synthetic`` checks that a
vertex lands on the pixel ``K`` projects it to, and that the depth read back is its Z.
"""
from __future__ import annotations

import numpy as np

NEAR_M, FAR_M = 0.03, 8.0
# floats per vertex: position (3), normal (3), albedo (3), texture coordinate (3), material (2),
# part id (1: an integer 0-255 the renderer writes to its part buffer, 0 = background)
VERTEX_FLOATS = 15

_VS = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
in vec3 in_tex;
in vec2 in_mat;
in float in_part;
out vec3 v_pos;
out vec3 v_nrm;
out vec3 v_col;
out vec3 v_tex;
out vec2 v_mat;
flat out float v_part;
void main() {
    gl_Position = proj * vec4(in_pos, 1.0);
    v_pos = in_pos; v_nrm = in_nrm; v_col = in_col; v_tex = in_tex; v_mat = in_mat; v_part = in_part;
}
"""

# Skin shading: wrapped Lambert (light bleeds past the terminator as in skin), a reddish
# subsurface tint near the terminator, Blinn-Phong specular, hemisphere ambient, and
# procedural albedo variation from 3D value noise on the rest-pose surface (mottling,
# fine pores) scaled by v_mat.x; v_mat.y is the specular strength of the material.
_FS = """
#version 330
uniform vec3 light_dir[2];
uniform vec3 light_col[2];
uniform vec3 ambient_up;
uniform vec3 ambient_down;
uniform vec3 up_dir;
uniform float shininess;
uniform float wrap;
uniform float tex_seed;
// skin detail on the hand's parts (ids 1-25), in rest-pose model space: line i runs from
// line_a[i].xyz to line_b[i].xyz, is seen across the skin with its normal line_n[i].xyz
// (the back direction of its bone) projected out, and applies on the palm side
// (line_n[i].w = 1), the back (-1), or is a nail (2: back side, flat profile, nail colour);
// line_a[i].w is its half-width (m), line_b[i].w its darkness. detail = 0 draws none.
#define MAX_LINES 64
#define MAX_REFS 256
uniform float detail;
// the lines that can touch part p: line_ref[part_range[p].x ... + part_range[p].y - 1],
// so that a fragment tests a handful of lines, not all of them
uniform ivec2 part_range[26];
uniform ivec4 line_ref[MAX_REFS / 4];
uniform vec4 line_a[MAX_LINES];
uniform vec4 line_b[MAX_LINES];
uniform vec4 line_n[MAX_LINES];
uniform vec3 nail_col;
in vec3 v_pos;
in vec3 v_nrm;
in vec3 v_col;
in vec3 v_tex;
in vec2 v_mat;
flat in float v_part;
out vec4 frag;

float hash(vec3 p) {
    p = fract(p * 0.3183099 + vec3(0.71, 0.113, 0.419) + tex_seed);
    p *= 17.0;
    return fract(p.x * p.y * p.z * (p.x + p.y + p.z));
}
float vnoise(vec3 x) {
    vec3 i = floor(x);
    vec3 f = fract(x);
    f = f * f * (3.0 - 2.0 * f);
    return mix(mix(mix(hash(i), hash(i + vec3(1, 0, 0)), f.x),
                   mix(hash(i + vec3(0, 1, 0)), hash(i + vec3(1, 1, 0)), f.x), f.y),
               mix(mix(hash(i + vec3(0, 0, 1)), hash(i + vec3(1, 0, 1)), f.x),
                   mix(hash(i + vec3(0, 1, 1)), hash(i + vec3(1, 1, 1)), f.x), f.y), f.z);
}
void main() {
    vec3 n = normalize(v_nrm);
    vec3 view = normalize(-v_pos);
    if (dot(n, view) < 0.0) n = -n;
    // albedo variation: large blotches (3 cm), mid mottling (8 mm), pores (1.5 mm)
    vec3 t = v_tex;
    float big = vnoise(t * 35.0) - 0.5;
    float mid = vnoise(t * 120.0 + 3.1) - 0.5;
    float fine = vnoise(t * 650.0 + 7.7) - 0.5;
    vec3 albedo = v_col * (1.0 + v_mat.x * (0.22 * big + 0.14 * mid + 0.10 * fine));
    albedo *= 1.0 + v_mat.x * 0.12 * big * vec3(0.6, -0.4, -0.6);   // redder / yellower patches
    float shine = v_mat.y;
    if (detail > 0.0 && v_part > 0.5 && v_part < 25.5) {
        float dark = 0.0;
        ivec2 range = part_range[int(v_part + 0.5)];
        for (int k = range.x; k < range.x + range.y; ++k) {
            int i = line_ref[k / 4][k % 4];
            vec3 a = line_a[i].xyz;
            vec3 ab = line_b[i].xyz - a;
            vec3 nn = line_n[i].xyz;
            float off = dot(t - a, nn);
            if ((line_n[i].w > 0.0 && line_n[i].w < 1.5) ? off > -0.001 : off < 0.001) continue;
            float h = clamp(dot(t - a, ab) / max(dot(ab, ab), 1e-12), 0.0, 1.0);
            vec3 d3 = t - a - ab * h;
            float d = length(d3 - dot(d3, nn) * nn);
            float hw = line_a[i].w;
            if (line_n[i].w > 1.5) {
                float w = detail * line_b[i].w * (1.0 - smoothstep(0.75 * hw, hw, d));
                // the free edge: the last fifth of the nail is paler
                vec3 nc = nail_col * (h > 0.8 ? 1.25 : 1.0);
                albedo = mix(albedo, min(nc, vec3(1.0)), w);
                shine = mix(shine, 0.5, w);
            } else {
                dark = max(dark, line_b[i].w * exp(-(d * d) / (hw * hw)));
            }
        }
        albedo *= 1.0 - detail * dark;
    }
    float hemi = 0.5 + 0.5 * dot(n, up_dir);
    vec3 c = albedo * mix(ambient_down, ambient_up, hemi);
    for (int i = 0; i < 2; ++i) {
        vec3 L = normalize(light_dir[i]);
        float ndl = dot(n, L);
        float diff = max((ndl + wrap) / (1.0 + wrap), 0.0);
        float sss = max(0.0, 1.0 - abs(ndl + 0.1) * 3.0) * wrap;      // red glow at the terminator
        c += albedo * light_col[i] * diff + light_col[i] * albedo * vec3(0.35, 0.08, 0.04) * sss;
        vec3 h = normalize(L + view);
        float spec = pow(max(dot(n, h), 0.0), shininess) * step(0.0, ndl);
        c += shine * (0.6 + 0.8 * fine) * light_col[i] * spec;
    }
    // alpha carries the part id (> 0 wherever something was drawn): one read gives colour,
    // coverage and parts
    frag = vec4(c, v_part / 255.0);
}
"""


def projection_from_K(K: np.ndarray, width: int, height: int, near: float = NEAR_M,
                      far: float = FAR_M) -> np.ndarray:
    """4x4 clip matrix for points in the OpenCV camera frame (x right, y down, z forward).

    ``x_clip = (2 / W) (K[0] . P) + (1 / W - 1) Z``  (so ``x_ndc = 2 (u + 0.5) / W - 1``),
    ``y_clip = (2 / H) (K[1] . P) + (1 / H - 1) Z``  (image row 0 -> first row read back),
    ``w_clip = Z`` and the usual OpenGL depth mapping of ``Z`` in ``[near, far]``.
    K may be any 3x3 with last row (0, 0, 1), rotated crops included.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"K must be 3x3 with last row (0, 0, 1), got {K.tolist()}")
    M = np.zeros((4, 4))
    M[0, :3] = 2.0 * K[0] / width
    M[0, 2] += 1.0 / width - 1.0
    M[1, :3] = 2.0 * K[1] / height
    M[1, 2] += 1.0 / height - 1.0
    M[2, 2] = (far + near) / (far - near)
    M[2, 3] = -2.0 * far * near / (far - near)
    M[3, 2] = 1.0
    return M


def default_lights() -> dict:
    """A neutral frontal light set (tests, previews)."""
    return {"light_dir": [[0.3, -0.5, -1.0], [-0.5, 0.2, -0.5]], "light_col": [[0.8, 0.8, 0.8], [0.2, 0.2, 0.2]],
            "ambient_up": [0.3, 0.3, 0.3], "ambient_down": [0.2, 0.2, 0.2], "up_dir": [0.0, -1.0, 0.0],
            "shininess": 20.0, "wrap": 0.3, "tex_seed": 0.0}


MAX_DETAIL_LINES = 64
MAX_DETAIL_REFS = 256


def no_detail() -> dict:
    """Skin-detail uniforms that draw nothing (see :func:`MeshRenderer.render`)."""
    return {"detail": 0.0, "lines_a": np.zeros((0, 4)), "lines_b": np.zeros((0, 4)), "lines_n": np.zeros((0, 4)),
            "lines_parts": [], "nail_col": np.zeros(3)}


class MeshRenderer:
    """Renders triangle meshes into a square ``size_px`` image with depth.

    The EGL context is created lazily on the first :meth:`render`, once per process.
    """

    def __init__(self, size_px: int, max_vertices: int = 8192, max_triangles: int = 12000):
        if size_px < 4:
            raise ValueError(f"render size must be >= 4 pixels, got {size_px}")
        self.size = int(size_px)
        self.max_vertices = int(max_vertices)
        self.max_triangles = int(max_triangles)
        self._gl = None

    def __getstate__(self):
        return {"size": self.size, "max_vertices": self.max_vertices, "max_triangles": self.max_triangles,
                "_gl": None}

    def _init(self):
        import moderngl
        try:
            ctx = moderngl.create_context(standalone=True, backend="egl")
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"cannot create a headless OpenGL (EGL) context: {exc}. The synthetic "
                               "renderer needs Mesa's EGL (apt: libegl1 libgl1-mesa-dri) or a GPU driver") from None
        prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        vbo = ctx.buffer(reserve=self.max_vertices * VERTEX_FLOATS * 4, dynamic=True)
        ibo = ctx.buffer(reserve=self.max_triangles * 3 * 4, dynamic=True)
        vao = ctx.vertex_array(prog, [(vbo, "3f 3f 3f 3f 2f 1f", "in_pos", "in_nrm", "in_col", "in_tex", "in_mat",
                                       "in_part")], index_buffer=ibo, index_element_size=4)
        s = self.size
        color = ctx.renderbuffer((s, s), 4)
        depth = ctx.depth_texture((s, s))
        fbo = ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
        self._gl = {"ctx": ctx, "prog": prog, "vbo": vbo, "ibo": ibo, "vao": vao, "fbo": fbo, "depth": depth}
        self._rgba = np.empty((s, s, 4), np.uint8)
        self._d = np.empty((s, s), np.float32)

    def render(self, vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, lights: dict | None = None,
               detail: dict | None = None):
        """Render one frame.

        Args:
            vertices: (V, 15) float rows ``position (m, camera frame), normal, albedo RGB,
                texture coordinate (rest-pose model space, m), material (texture amount,
                specular), part id (integer 1-255; 0 would draw nothing visible in alpha)``.
            faces: (F, 3) int triangles into ``vertices``.
            K: (3, 3) intrinsics of the ``size_px`` square image.
            lights: see :func:`default_lights`.
            detail: skin lines and nails on the hand's parts (ids 1-25), in the texture
                coordinates' rest-pose space: ``detail`` (strength, 0 = none), ``lines_a``,
                ``lines_b``, ``lines_n`` (L, 4) rows as the shader's line_a/b/n (L at most
                ``MAX_DETAIL_LINES``), ``lines_parts`` (L lists of the part ids, 1-25, each
                line can touch) and ``nail_col`` RGB; None: :func:`no_detail`.

        Returns:
            rgb (S, S, 3) float32 linear colour, alpha (S, S) float32 coverage (0/1),
            depth_m (S, S) float32 camera Z of the nearest surface (inf where empty),
            part (S, S) uint8 part id of the nearest surface (0 where empty).
            Row 0 is the top image row.
        """
        if self._gl is None:
            self._init()
        gl = self._gl
        vertices = np.ascontiguousarray(vertices, dtype="f4")
        faces = np.ascontiguousarray(faces, dtype="i4")
        if vertices.ndim != 2 or vertices.shape[1] != VERTEX_FLOATS:
            raise ValueError(f"vertices must be (V, {VERTEX_FLOATS}), got {vertices.shape}")
        if len(vertices) > self.max_vertices or len(faces) > self.max_triangles:
            raise ValueError(f"mesh of {len(vertices)} vertices / {len(faces)} triangles exceeds the "
                             f"renderer's {self.max_vertices} / {self.max_triangles}")
        L = dict(default_lights(), **(lights or {}))
        prog = gl["prog"]
        gl["vbo"].write(vertices.tobytes())
        gl["ibo"].write(faces.tobytes())
        prog["proj"].write(projection_from_K(K, self.size, self.size).T.astype("f4").tobytes())
        for name in ("light_dir", "light_col"):
            prog[name].write(np.asarray(L[name], "f4").reshape(2, 3).tobytes())
        for name in ("ambient_up", "ambient_down", "up_dir"):
            prog[name].value = tuple(float(x) for x in L[name])
        for name in ("shininess", "wrap", "tex_seed"):
            prog[name].value = float(L[name])
        self._write_detail(prog, detail or no_detail())
        ctx = gl["ctx"]
        gl["fbo"].use()
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        gl["fbo"].clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        gl["vao"].render(vertices=int(faces.size))
        gl["fbo"].read_into(self._rgba, components=4)
        gl["depth"].read_into(self._d)
        rgb = self._rgba[..., :3].astype(np.float32) * (1.0 / 255.0)
        part = self._rgba[..., 3].copy()
        alpha = (part > 0).astype(np.float32)
        d = self._d.astype(np.float64)
        z_ndc = 2.0 * d - 1.0
        # inverse of the depth mapping: Z = 2 f n / ((f + n) - (f - n) z_ndc)
        depth = (2.0 * FAR_M * NEAR_M / ((FAR_M + NEAR_M) - (FAR_M - NEAR_M) * z_ndc)).astype(np.float32)
        depth[d >= 1.0] = np.inf
        return rgb, alpha, depth, part

    @staticmethod
    def _write_detail(prog, detail: dict) -> None:
        n = len(detail["lines_a"])
        parts = detail["lines_parts"]
        if n > MAX_DETAIL_LINES or not (len(detail["lines_b"]) == len(detail["lines_n"]) == len(parts) == n):
            raise ValueError(f"detail needs as many lines_a, lines_b, lines_n and lines_parts rows, at most "
                             f"{MAX_DETAIL_LINES}; got {n}, {len(detail['lines_b'])}, {len(detail['lines_n'])}, "
                             f"{len(parts)}")
        on = n > 0 and detail["detail"] > 0
        prog["detail"].value = float(detail["detail"]) if on else 0.0
        if not on:
            return
        by_part = [[] for _ in range(26)]
        for i, ps in enumerate(parts):
            for p in ps:
                if not 1 <= int(p) <= 25:
                    raise ValueError(f"line {i} names part {p}; hand parts are 1-25")
                by_part[int(p)].append(i)
        refs = np.zeros(MAX_DETAIL_REFS, "i4")
        ranges = np.zeros((26, 2), "i4")
        k = 0
        for p, lines in enumerate(by_part):
            if k + len(lines) > MAX_DETAIL_REFS:
                raise ValueError(f"detail lines name more than {MAX_DETAIL_REFS} (line, part) pairs")
            ranges[p] = (k, len(lines))
            refs[k:k + len(lines)] = lines
            k += len(lines)
        prog["part_range"].write(ranges.tobytes())
        prog["line_ref"].write(refs.tobytes())
        for name, key in (("line_a", "lines_a"), ("line_b", "lines_b"), ("line_n", "lines_n")):
            rows = np.zeros((MAX_DETAIL_LINES, 4), "f4")
            rows[:n] = detail[key]
            prog[name].write(rows.tobytes())
        prog["nail_col"].value = tuple(float(x) for x in detail["nail_col"])
