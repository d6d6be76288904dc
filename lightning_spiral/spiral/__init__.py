"""The spiral driver and the one function that builds it from a Hydra config."""

from lightning_spiral.spiral.build import build_spiral
from lightning_spiral.spiral.driver import TEACHER_MODES, Spiral, TeacherMode

__all__ = ["TEACHER_MODES", "Spiral", "TeacherMode", "build_spiral"]
