"""Every module imports only its own layer and the layers below it (parsed, not imported).

Order: paths/errors < cache < runtime < io < ops < steps < pipelines < edges
(cli, viewer, report, synth). Imports inside functions count too. ops may use
the io modules that touch no file (pyramid block reduction, the region-table
schema), and those modules must stay free of file access.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = {
    "voxelflow": 0, "voxelflow.paths": 0, "voxelflow.errors": 0, "voxelflow.zarr_stores": 0,
    "voxelflow.cache": 1,
    "voxelflow.runtime": 2,
    "voxelflow.io": 3,
    "voxelflow.ops": 4,
    "voxelflow.steps": 5,
    "voxelflow.pipelines": 6,
    "voxelflow.cli": 7, "voxelflow.viewer": 7, "voxelflow.report": 7, "voxelflow.synth": 7,
    "voxelflow.synth_cells": 7, "voxelflow.synth_atlas": 7, "voxelflow.__main__": 7,
}
#: io modules without file access that ops may use: pyramid block reduction, the region-table
#: schema, the definition of a trained cell classifier, the orientation-code schema.
PURE_IO = {"voxelflow.io.blockreduce", "voxelflow.io.blockmean", "voxelflow.io.regions", "voxelflow.io.cell_classifier",
           "voxelflow.io.orientation_code"}
FILE_ACCESS = ("voxelflow.paths", "fsspec", "zarr", "tifffile", "ome_zarr", "voxelflow.io.ome_zarr")


def layer_of(module: str) -> tuple[str, int]:
    """The layer package of a dotted module name and its rank."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS and (name != "voxelflow" or n == len(parts)):
            return name, LAYERS[name]
    raise KeyError(f"{module} belongs to no layer; add it to LAYERS")


def imported_modules(source: str) -> set[str]:
    """voxelflow (and file-access) modules a source imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "voxelflow":
                # ``from voxelflow import steps`` imports a module; ``from voxelflow import __version__`` a name
                out |= {f"voxelflow.{a.name}" if _is_module(a.name) else "voxelflow" for a in node.names}
            else:
                out.add(node.module)
    return out


def _is_module(name: str) -> bool:
    pkg = SRC / "voxelflow"
    return (pkg / f"{name}.py").is_file() or (pkg / name / "__init__.py").is_file()


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def violations(module: str, source: str) -> list[str]:
    mine, rank = layer_of(module)
    found = []
    for target in sorted(imported_modules(source)):
        if target.split(".")[0] != "voxelflow" or target == "voxelflow":
            continue
        theirs, their_rank = layer_of(target)
        if their_rank > rank:
            found.append(f"{module} ({mine}) imports {target} ({theirs}), a layer above it")
        elif mine == "voxelflow.ops" and theirs == "voxelflow.io" and target not in PURE_IO:
            found.append(f"{module} (ops) imports {target}: ops do no I/O")
    if module in PURE_IO:
        found += [f"{module} is used by ops but imports {t}" for t in imported_modules(source)
                  if t.startswith(FILE_ACCESS)]
    return found


MODULES = sorted(SRC.joinpath("voxelflow").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_imports_only_lower_layers(path):
    assert violations(module_name(path), path.read_text()) == []


@pytest.mark.parametrize("module, source", [
    ("voxelflow.steps.step", "def show():\n    from voxelflow.viewer import add_result\n"),
    ("voxelflow.ops._label", "from voxelflow.io.ome_zarr import open_ome_zarr\n"),
    ("voxelflow.cache._node", "import voxelflow.steps.node\n"),
    ("voxelflow.pipelines.plaque", "from voxelflow import report\n"),
    ("voxelflow.io.blockreduce", "import zarr\n"),
])
def test_the_rule_catches_upward_imports(module, source):
    assert violations(module, source)


def test_every_module_has_a_layer():
    for path in MODULES:
        layer_of(module_name(path))
