"""Rendering problems: NeRF novel-view synthesis on Blender-format scenes (``nerf:DIR``), the
reader of that format, the offline scene generator and volume rendering."""

from .blender import Views, load_views
from .problem import NeRF, build_nerf
from .scene import SceneSettings, render_scene

__all__ = ["NeRF", "build_nerf", "Views", "load_views", "SceneSettings", "render_scene"]
