"""
Offscreen RGB-D rendering of the cell camera: one render pass gives colour and depth.

mujoco.Renderer renders the scene twice for colour and depth; reading both buffers after one
mjr_render halves the cost on software GL. The OpenGL context belongs to the thread that
creates the RgbdRenderer: create, use and close it in one thread. MUJOCO_GL selects the
backend (egl or osmesa) and must be set before mujoco is imported.
"""

import mujoco
from mujoco.rendering.classic import gl_context
import numpy as np

from vpg_sim import scene


class RgbdRenderer:
    """Renders (rgb uint8 (H, W, 3), depth float32 (H, W) metres along the optical axis)."""

    def __init__(self, model, width=scene.IMAGE_WIDTH, height=scene.IMAGE_HEIGHT):
        self._width = width
        self._height = height
        self._gl = gl_context.GLContext(width, height)
        self._gl.make_current()
        self._model = None
        self._context = None
        self._scene = None
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), dtype=np.uint8)
        self._raw_depth = np.empty((height, width), dtype=np.float32)
        self._data = None
        self._last = None  # (qpos, rgb, depth) of the last render_qpos call
        self.set_model(model)

    def set_model(self, model):
        """Switch to another compiled model (after a scene reset); reuses the GL context."""
        if model is self._model:
            return
        self._gl.make_current()
        if self._context is not None:
            self._context.free()
        self._model = model
        self._data = mujoco.MjData(model)
        self._last = None
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 4 * model.ngeom))
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = model.camera(scene.CAMERA).id

    @property
    def model(self):
        return self._model

    def render(self, data):
        """
        Render the camera view of data (kinematics must be current, e.g. after mj_forward).

        Returns new arrays: rgb (H, W, 3) uint8 and depth (H, W) float32, metres of planar
        depth (distance along the optical axis).
        """
        self._gl.make_current()
        mujoco.mjv_updateScene(self._model, data, self._option, None, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL.value, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._rgb, self._raw_depth, self._rect, self._context)
        extent = self._model.stat.extent
        near = self._model.vis.map.znear * extent
        far = self._model.vis.map.zfar * extent
        # Reversed-Z depth buffer (1 = near plane, 0 = far plane), as mujoco.Renderer reads it.
        raw = self._raw_depth.astype(np.float64)
        depth = (near * far / (near + raw * (far - near))).astype(np.float32)
        return np.flipud(self._rgb).copy(), np.flipud(depth).copy()

    def render_qpos(self, model, qpos, reuse_tolerance=1e-6):
        """
        Render the state qpos of model (switching models as needed).

        An unchanged scene gives the same pixels, so when no qpos entry moved by more than
        reuse_tolerance since the last call the previous arrays are returned again (do not
        modify them).
        """
        self.set_model(model)
        if self._last is not None and np.max(np.abs(qpos - self._last[0])) <= reuse_tolerance:
            return self._last[1], self._last[2]
        self._data.qpos[:] = qpos
        mujoco.mj_kinematics(model, self._data)
        mujoco.mj_camlight(model, self._data)
        rgb, depth = self.render(self._data)
        self._last = (np.array(qpos, copy=True), rgb, depth)
        return rgb, depth

    def close(self):
        """Free GL resources; call from the thread that created the renderer."""
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None
