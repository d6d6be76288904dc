"""The single exception family of lightning-spiral.

Every error the package raises on purpose subclasses :class:`SpiralError`, which itself subclasses
Lightning's ``MisconfigurationException`` so that Lightning users can catch one familiar type.
Messages name the argument in backticks, the value received, what is allowed, and a hint.

Example:
    >>> from lightning_spiral.errors import SpiralError, SpiralConfigError
    >>> issubclass(SpiralConfigError, SpiralError)
    True
"""

from __future__ import annotations

from lightning.pytorch.utilities.exceptions import MisconfigurationException


class SpiralError(MisconfigurationException):
    """Base class of every error raised on purpose by lightning-spiral."""


class SpiralConfigError(SpiralError, ValueError):
    """An argument or config value is invalid; raised before any work is done."""


class ModelFormatError(SpiralError):
    """A saved model file is missing, corrupt, or not in lightning-spiral's format."""


class PruningError(SpiralError):
    """A model cannot be pruned as asked (unprunable layer, rank mismatch, ...)."""


class WeightsDownloadError(SpiralError):
    """Pretrained weights could not be downloaded (no network); the message says where to put the file."""


class StageFailedError(SpiralError):
    """A spiral stage failed (non-finite loss, ...); earlier stages are left intact."""
