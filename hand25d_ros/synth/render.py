"""Headless OpenGL rendering of a mesh given in the camera optical frame (moderngl, EGL).

The projection is built from an OpenCV-style K (pixel centres at integers) so that a
vertex lands exactly where ``K`` projects it. Image row 0 is the top row: clip-space y
is chosen so that the first row OpenGL reads back (the bottom of its framebuffer) is
image row 0, and no flip is needed (tested against K projections).
"""
from __future__ import annotations

import numpy as np

NEAR_M, FAR_M = 0.02, 10.0

_VS = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
out vec3 v_pos;
out vec3 v_nrm;
out vec3 v_col;
void main() {
    gl_Position = proj * vec4(in_pos, 1.0);
    v_pos = in_pos; v_nrm = in_nrm; v_col = in_col;
}
"""
_FS = """
#version 330
uniform vec3 light_dir[2];
uniform vec3 light_col[2];
uniform vec3 ambient;
uniform float spec;
uniform float shininess;
in vec3 v_pos;
in vec3 v_nrm;
in vec3 v_col;
out vec4 frag;
void main() {
    vec3 n = normalize(v_nrm);
    vec3 view = normalize(-v_pos);
    if (dot(n, view) < 0.0) n = -n;
    vec3 c = ambient * v_col;
    for (int i = 0; i < 2; ++i) {
        vec3 L = normalize(light_dir[i]);
        float d = max(dot(n, L), 0.0);
        // wrap lighting: skin scatters light past the terminator
        float wrap = max((dot(n, L) + 0.3) / 1.3, 0.0);
        c += v_col * light_col[i] * mix(d, wrap, 0.5);
        vec3 h = normalize(L + view);
        c += spec * light_col[i] * pow(max(dot(n, h), 0.0), shininess) * step(0.0, dot(n, L));
    }
    frag = vec4(c, 1.0);
}
"""


def projection_from_K(K: np.ndarray, width: int, height: int, near: float = NEAR_M,
                      far: float = FAR_M) -> np.ndarray:
    """4x4 clip matrix for points in the OpenCV camera frame (x right, y down, z forward).

    ``x_ndc = 2 (u + 0.5) / W - 1`` and ``y_ndc = 2 (v + 0.5) / H - 1`` with ``(u, v)`` the
    K projection, so framebuffer row 0 (read first) is image row 0.
    """
    K = np.asarray(K, dtype=np.float64)
    M = np.zeros((4, 4))
    M[0, :3] = 2.0 * K[0] / width
    M[0, 2] += 2.0 * 0.5 / width - 1.0
    M[1, :3] = 2.0 * K[1] / height
    M[1, 2] += 2.0 * 0.5 / height - 1.0
    M[2, 2] = (far + near) / (far - near)
    M[2, 3] = -2.0 * far * near / (far - near)
    M[3, 2] = 1.0
    return M


class MeshRenderer:
    """One EGL context (created on first use, so the object can cross process forks)."""

    def __init__(self, size_px: int, max_vertices: int = 20000):
        self.size = size_px
        self.max_vertices = max_vertices
        self._ctx = None

    def _init(self):
        import moderngl
        try:
            self._ctx = moderngl.create_context(standalone=True, backend="egl")
        except Exception as exc:
            raise RuntimeError(f"cannot create a headless OpenGL (EGL) context: {exc}. "
                               "The synthetic renderer needs Mesa's EGL (libegl1, llvmpipe) or a GPU driver") from None
        ctx = self._ctx
        self._prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        self._vbo = ctx.buffer(reserve=self.max_vertices * 9 * 4)
        self._ibo = ctx.buffer(reserve=self.max_vertices * 6 * 4)
        self._vao = ctx.vertex_array(self._prog, [(self._vbo, "3f 3f 3f", "in_pos", "in_nrm", "in_col")],
                                     index_buffer=self._ibo, index_element_size=4)
        s = self.size
        self._fbo = ctx.framebuffer(color_attachments=[ctx.texture((s, s), 4)],
                                    depth_attachment=ctx.depth_texture((s, s)))

    def render(self, verts_cam, normals_cam, colors, faces, K, lights):
        """Render; returns rgb (S, S, 3) float32, alpha (S, S) float32, depth_m (S, S) (inf = empty).

        Args:
            verts_cam, normals_cam, colors: (V, 3) in the camera optical frame (m), RGB albedo.
            faces: (F, 3) int.
            K: (3, 3) intrinsics of the S x S render.
            lights: dict with light_dir (2, 3) (toward the light, camera frame), light_col (2, 3),
                ambient (3,), spec, shininess.
        """
        if self._ctx is None:
            self._init()
        if len(verts_cam) > self.max_vertices:
            raise ValueError(f"mesh has {len(verts_cam)} vertices, renderer holds {self.max_vertices}")
        data = np.concatenate([verts_cam, normals_cam, colors], 1).astype("f4")
        self._vbo.write(data.tobytes())
        self._ibo.write(np.asarray(faces, dtype="i4").tobytes())
        self._prog["proj"].write(projection_from_K(K, self.size, self.size).T.astype("f4").tobytes())
        self._prog["light_dir"].write(np.asarray(lights["light_dir"], "f4").tobytes())
        self._prog["light_col"].write(np.asarray(lights["light_col"], "f4").tobytes())
        self._prog["ambient"].write(np.asarray(lights["ambient"], "f4").tobytes())
        self._prog["spec"].value = float(lights["spec"])
        self._prog["shininess"].value = float(lights["shininess"])
        ctx = self._ctx
        self._fbo.use()
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self._vao.render(vertices=int(np.size(faces)))
        s = self.size
        rgba = np.frombuffer(self._fbo.read(components=4), np.uint8).reshape(s, s, 4).astype(np.float32) / 255.0
        d = np.frombuffer(self._fbo.depth_attachment.read(), "f4").reshape(s, s)
        z_ndc = 2.0 * d.astype(np.float64) - 1.0
        depth = 2.0 * FAR_M * NEAR_M / ((FAR_M + NEAR_M) - (FAR_M - NEAR_M) * z_ndc)
        depth[d >= 1.0] = np.inf
        return rgba[..., :3].copy(), rgba[..., 3].copy(), depth
