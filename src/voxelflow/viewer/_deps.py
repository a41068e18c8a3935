"""The one place that imports napari, so a missing extra gives one clear error."""

from __future__ import annotations

from voxelflow.errors import OptionalDependencyError


def require_napari():
    """Import and return the ``napari`` module.

    Raises
    ------
    OptionalDependencyError
        If napari (or its Qt binding) is not installed; the message names the
        ``viewer`` extra that provides it.
    """
    try:
        import napari
    except ImportError as exc:
        raise OptionalDependencyError(
            "the napari viewer is not installed; install the 'viewer' extra: "
            f"pip install 'voxelflow[viewer]' ({exc})"
        ) from exc
    return napari
