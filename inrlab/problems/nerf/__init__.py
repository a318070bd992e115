"""Rendering problems: NeRF novel-view synthesis on Blender-format scenes (``nerf:DIR``), the
reader of that format, the offline scene generator and volume rendering."""

from .blender import Views, load_views
from .neus import NeuS, build_neus
from .problem import NeRF, build_nerf
from .scene import SceneSettings, render_scene

__all__ = ["NeRF", "build_nerf", "NeuS", "build_neus", "Views", "load_views", "SceneSettings", "render_scene"]
