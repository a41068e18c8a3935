"""`import voxelflow` and its core layers must not need the optional extras."""

import subprocess
import sys

CORE = [
    "voxelflow", "voxelflow.paths", "voxelflow.errors", "voxelflow.cache", "voxelflow.cache._store",
    "voxelflow.runtime.logs", "voxelflow.runtime.session", "voxelflow.io.ome_zarr", "voxelflow.io.open", "voxelflow.ops._label",
    "voxelflow.ops._objects", "voxelflow.ops._bias", "voxelflow.steps", "voxelflow.pipelines.plaque",
    "voxelflow.cli",
]


def test_core_import_does_not_load_optional_extras():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "heavy = [m for m in ('napari', 'SimpleITK', 's3fs', 'PyQt6', 'h5py') if m in sys.modules]\n"
        + "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_top_level_name_raises_attribute_error():
    import voxelflow

    try:
        voxelflow.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
