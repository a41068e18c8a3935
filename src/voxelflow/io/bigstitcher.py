"""BigStitcher / BigDataViewer ``dataset.xml`` with an N5 image loader as a lazy dask array.

A ``dataset.xml`` names the N5 container and its view setups (channel, tile,
angle, illumination), time points, each setup's ``voxelSize`` and the
registration affines; datasets are ``setup<id>/timepoint<t>/s<level>`` with the
setup's ``downsamplingFactors`` (read by :mod:`voxelflow.io.n5`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import dask.array as da
import numpy as np

from voxelflow.errors import ImageFormatError, InvalidInputError, InvalidPathError
from voxelflow.io.imagemeta import ImageFacts, length_in_um
from voxelflow.io.n5 import as_dask, dataset, read_json
from voxelflow.paths import VPath, as_vpath

__all__ = ["open_bigstitcher"]


def _text(el, tag: str, where: str) -> str:
    child = el.find(tag)
    if child is None or child.text is None:
        raise ImageFormatError(f"{where}: <{el.tag}> has no <{tag}>")
    return child.text.strip()


def _timepoints(root, where: str) -> list[int]:
    tp = root.find("SequenceDescription/Timepoints")
    if tp is None:
        return [0]
    kind = tp.get("type", "")
    try:
        if kind == "range":
            return list(range(int(_text(tp, "first", where)), int(_text(tp, "last", where)) + 1))
        if kind == "pattern":
            out = []
            for part in _text(tp, "integerpattern", where).split(","):
                lo, _, hi = part.strip().partition("-")
                out += list(range(int(lo), int(hi or lo) + 1))
            return out
        if kind == "list":
            return [int(el.text) for el in tp.iter("id")]
    except ValueError as exc:
        raise ImageFormatError(f"{where}: cannot parse the time points ({exc})") from exc
    raise ImageFormatError(f"{where}: unsupported Timepoints type {kind!r}")


def _affine(reg, where: str) -> np.ndarray:
    """Composed registration (4x4) of one ViewRegistration: the first listed transform is applied last."""
    total = np.eye(4)
    for vt in reg.findall("ViewTransform"):
        values = [float(v) for v in _text(vt, "affine", where).split()]
        if len(values) != 12:
            raise ImageFormatError(f"{where}: an affine needs 12 numbers, got {len(values)}")
        m = np.eye(4)
        m[:3] = np.array(values).reshape(3, 4)
        total = total @ m
    return total


def open_bigstitcher(url, level: int = 0, *, storage_options: dict | None = None):
    """Open a BigStitcher / BigDataViewer ``dataset.xml`` with an N5 image loader lazily.

    Every channel must have exactly one view setup (one tile, angle and
    illumination): stitched or fused data, or a single tile. Channels become the
    ``c`` axis and time points the ``t`` axis (each only when there are several).

    Parameters
    ----------
    url : str or VPath
        The XML file (local or fsspec URL); the N5 path in it is resolved against it.
    level : int
        Resolution level (``s<level>`` of every setup).
    storage_options : dict, optional
        fsspec options.

    Returns
    -------
    array : dask.array.Array, shape ([T,] [C,] Z, Y, X)
    facts : ImageFacts
        Voxel size: ``voxelSize`` of the setups. When the registration affine of the
        first view is axis-aligned, its diagonal sets the relative axis scales and its
        translation the origin (registration world units are converted to micrometres
        with the x voxel size), as BigStitcher's calibration does.

    Raises
    ------
    InvalidPathError
        The XML cannot be read.
    ImageFormatError
        Not an N5-backed SpimData XML, several tiles/angles per channel, setups whose
        sizes, dtypes or voxel sizes disagree, missing N5 datasets.
    """
    xml_path = url if isinstance(url, VPath) else as_vpath(url, storage_options)
    where = xml_path.url
    try:
        root = ET.fromstring(xml_path.read_bytes())
    except (OSError, FileNotFoundError) as exc:
        raise InvalidPathError(f"cannot read {where}: {exc}") from exc
    except ET.ParseError as exc:
        raise ImageFormatError(f"{where}: invalid XML ({exc})") from exc
    if root.tag != "SpimData":
        raise ImageFormatError(f"{where}: not a BigStitcher/BigDataViewer dataset XML (root <{root.tag}>)")
    loader = root.find("SequenceDescription/ImageLoader")
    if loader is None or not str(loader.get("format", "")).startswith("bdv.n5"):
        fmt = None if loader is None else loader.get("format")
        raise ImageFormatError(f"{where}: image loader format {fmt!r}; voxelflow reads the N5 one ('bdv.n5')")
    base_el = root.find("BasePath")
    base = xml_path.parent
    if base_el is not None and base_el.text and base_el.text.strip() not in (".", ""):
        base = base / base_el.text.strip() if base_el.get("type", "relative") == "relative" else as_vpath(
            base_el.text.strip(), storage_options)
    n5_el = loader.find("n5")
    if n5_el is None or not n5_el.text:
        raise ImageFormatError(f"{where}: the ImageLoader has no <n5> path")
    n5 = base / n5_el.text.strip() if n5_el.get("type", "relative") == "relative" else as_vpath(
        n5_el.text.strip(), storage_options)

    channel_names = {el.findtext("id", "").strip(): (el.findtext("name") or "").strip()
                     for el in root.findall("SequenceDescription/ViewSetups/Attributes[@name='channel']/Channel")}
    setups = []
    for vs in root.findall("SequenceDescription/ViewSetups/ViewSetup"):
        attrs = vs.find("attributes")
        entry = {"id": int(_text(vs, "id", where)),
                 "size": tuple(int(v) for v in _text(vs, "size", where).split()),
                 "attrs": {c.tag: c.text.strip() for c in attrs} if attrs is not None else {}}
        vox = vs.find("voxelSize")
        if vox is not None:
            values = [float(v) for v in _text(vox, "size", where).split()]
            unit = vox.findtext("unit", "um").strip()
            entry["voxel"] = tuple(length_in_um(v, unit, f"{where} setup {entry['id']} voxelSize") for v in values)
        setups.append(entry)
    if not setups:
        raise ImageFormatError(f"{where}: no ViewSetup")
    by_channel: dict[str, list[dict]] = {}
    for s in setups:
        by_channel.setdefault(s["attrs"].get("channel", "0"), []).append(s)
    crowded = {c: ss for c, ss in by_channel.items() if len(ss) > 1}
    if crowded:
        c, ss = next(iter(crowded.items()))
        kinds = [k for k in ("tile", "angle", "illumination") if len({s["attrs"].get(k) for s in ss}) > 1]
        raise ImageFormatError(
            f"{where}: channel {c} has {len(ss)} view setups (ids {[s['id'] for s in ss]}, differing in "
            f"{', '.join(kinds) or 'their attributes'}); voxelflow reads one volume per channel: fuse the views "
            "in BigStitcher first"
        )
    channels = sorted(by_channel, key=lambda c: int(c) if c.isdigit() else c)
    chosen = [by_channel[c][0] for c in channels]
    if len({s["size"] for s in chosen}) != 1:
        raise ImageFormatError(f"{where}: channel setups have different sizes {[s['size'] for s in chosen]}")
    voxels = {s.get("voxel") for s in chosen}
    if len(voxels) != 1:
        raise ImageFormatError(f"{where}: channel setups have different voxel sizes {sorted(map(str, voxels))}")
    timepoints = _timepoints(root, where)

    grids, levels_info = [], None
    for t in timepoints:
        row = []
        for s in chosen:
            setup_dir = n5 / f"setup{s['id']}"
            factors = read_json(setup_dir / "attributes.json", where).get("downsamplingFactors") or [[1, 1, 1]]
            tdir = setup_dir / f"timepoint{t}"
            paths = [tdir / f"s{k}" for k in range(len(factors))]
            if not 0 <= level < len(paths):
                raise InvalidInputError(f"{where}: level {level} is out of range; {len(paths)} level(s)")
            arrays = []
            for p in paths:
                if not (p / "attributes.json").isfile():
                    raise ImageFormatError(f"{where}: N5 dataset {p.url} of setup {s['id']} time point {t} is missing")
                arrays.append(dataset(p, where))
            if arrays[0].shape != tuple(reversed(s["size"])):
                raise ImageFormatError(f"{where}: {paths[0].url} has shape {arrays[0].shape[::-1]} (x, y, z) but "
                                       f"setup {s['id']} declares size {s['size']}")
            info = ([a.shape for a in arrays], [tuple(float(v) for v in reversed(f)) for f in factors],
                    arrays[0].dtype)
            if levels_info is None:
                levels_info = info
            elif info != levels_info:
                raise ImageFormatError(f"{where}: setup {s['id']} time point {t} differs in levels or dtype "
                                       "from the first view")
            row.append(as_dask(arrays[level], where))
        grids.append(row)
    shapes_zyx, factors_zyx, _ = levels_info
    keep_t, keep_c = len(timepoints) > 1, len(chosen) > 1
    if keep_t:
        arr = da.stack([da.stack(row) if keep_c else row[0] for row in grids])
    else:
        arr = da.stack(grids[0]) if keep_c else grids[0][0]

    voxel = chosen[0].get("voxel")
    scale_zyx: tuple = tuple(reversed(voxel)) if voxel else (None, None, None)
    origin_zyx = (0.0, 0.0, 0.0)
    reg = root.find(f"ViewRegistrations/ViewRegistration[@timepoint='{timepoints[0]}'][@setup='{chosen[0]['id']}']")
    if reg is not None and voxel:
        m = _affine(reg, where)[:3]
        lin = m[:, :3]
        diag = np.diag(lin)
        if np.all(np.abs(lin - np.diag(diag)) <= 1e-9 * np.abs(diag).max()) and np.all(diag > 0):
            world_um = voxel[0] / diag[0]
            scale_zyx = tuple(float(world_um * d) for d in diag[::-1])
            origin_zyx = tuple(float(world_um * b) for b in m[::-1, 3])
    lead = (len(timepoints),) * keep_t + (len(chosen),) * keep_c
    axes = ("t",) * keep_t + ("c",) * keep_c + ("z", "y", "x")
    n_lead = len(lead)
    names = tuple(channel_names.get(c) or f"channel {c}" for c in channels) if keep_c else None
    facts = ImageFacts(
        url=where, format="n5", version=str(read_json(n5 / "attributes.json", where).get("n5", "")),
        name=xml_path.name, axes=axes, levels=tuple(f"s{k}" for k in range(len(shapes_zyx))),
        shapes=tuple(lead + tuple(s) for s in shapes_zyx), scale0=(1.0,) * n_lead + scale_zyx,
        translation0=(0.0,) * n_lead + tuple(origin_zyx),
        level_factors=tuple((1.0,) * n_lead + f for f in factors_zyx), channel_names=names,
        scale_source="the XML (ViewSetup voxelSize)",
    )
    return arr, facts
