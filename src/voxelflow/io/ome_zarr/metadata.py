"""NGFF (OME-Zarr) metadata: parse 0.4 / 0.5 ``multiscales`` and build it for writing.

NGFF 0.4 keeps ``multiscales`` at the top of the zarr v2 ``.zattrs``, with the
version inside each multiscale; NGFF 0.5 nests everything under ``attributes.ome``
of the zarr v3 ``zarr.json`` with one ``version`` for the group.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from voxelflow.errors import OmeZarrError

__all__ = [
    "SPACE_AXES",
    "WRITER",
    "OmeMeta",
    "axis_type",
    "image_attrs",
    "label_attrs",
    "labels_group_attrs",
    "ome_section",
    "parse_image",
]

SPACE_AXES = ("z", "y", "x")
WRITER = "voxelflow"
SUPPORTED = ("0.1", "0.2", "0.3", "0.4", "0.5")


def axis_type(name: str) -> str:
    """NGFF axis type of a conventional axis name."""
    return {"t": "time", "c": "channel"}.get(name, "space")


@dataclass(frozen=True)
class OmeMeta:
    """Metadata of one opened OME-Zarr image level.

    Attributes
    ----------
    url : str
        The image location (without any ``?slices=`` suffix).
    version : str
        NGFF version, ``'0.4'`` or ``'0.5'`` (older 0.1-0.3 read as well).
    name : str or None
        ``multiscales[0].name``.
    axes : tuple of str
        Axis names of the opened array, e.g. ``('c', 'z', 'y', 'x')``; axes dropped
        by an integer in ``?slices=`` are removed.
    axis_types : tuple of str or None
        ``'time'``, ``'channel'``, ``'space'`` (or None if unset) per axis.
    units : tuple of str or None
        Unit per axis (None when the metadata gives none).
    levels : tuple of str
        Paths of all pyramid levels, finest first.
    level : int
        Index of the opened level in ``levels``.
    scales : tuple of tuple of float
        Physical voxel size per axis for every level (of the whole image).
    translations : tuple of tuple of float
        Physical offset of voxel 0 per axis for every level (zeros if absent).
    shapes : tuple of tuple of int
        Array shape of every level (of the whole image).
    scale : tuple of float
        Voxel size of the opened array (after ``?slices=`` steps).
    translation : tuple of float
        Physical position of the first voxel of the opened array.
    channel_names : tuple of str or None
        ``omero.channels[].label`` (after ``?slices=`` on the channel axis).
    labels : tuple of str
        Names of the label images under ``labels/``.
    slices : str or None
        The ``?slices=`` text that was applied.
    written_by_voxelflow : bool
        True if voxelflow wrote the image (every chunk exists on disk).
    format : str
        What the image was read from: ``'ome-zarr'``, ``'tiff-planes'``,
        ``'tiff'``, ``'imaris'`` or ``'n5'`` (see :func:`voxelflow.io.open.open_image`).
        For formats other than OME-Zarr ``version`` is the format's own version
        (``''`` when it has none).
    """

    url: str
    version: str
    name: str | None
    axes: tuple[str, ...]
    axis_types: tuple[str | None, ...]
    units: tuple[str | None, ...]
    levels: tuple[str, ...]
    level: int
    scales: tuple[tuple[float, ...], ...]
    translations: tuple[tuple[float, ...], ...]
    shapes: tuple[tuple[int, ...], ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...]
    channel_names: tuple[str, ...] | None = None
    labels: tuple[str, ...] = ()
    slices: str | None = None
    written_by_voxelflow: bool = False
    format: str = "ome-zarr"

    def replace(self, **changes) -> OmeMeta:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def ome_section(attrs: dict, url: str) -> tuple[str, dict]:
    """Return ``(version, section)`` where section holds ``multiscales``/``labels``/``omero`` keys."""
    if isinstance(attrs.get("ome"), dict):
        ome = attrs["ome"]
        return str(ome.get("version", "0.5")), ome
    if "multiscales" in attrs:
        ms = attrs["multiscales"]
        version = ms[0].get("version", "0.4") if isinstance(ms, list) and ms and isinstance(ms[0], dict) else "0.4"
        return str(version), attrs
    if "labels" in attrs:
        return "0.4", attrs
    raise OmeZarrError(f"{url} is not an OME-Zarr image: its zarr attributes have no 'multiscales' metadata")


def _scale_and_translation(transforms: Any, ndim: int, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scale, translation = (1.0,) * ndim, (0.0,) * ndim
    if transforms is None:
        return scale, translation
    if not isinstance(transforms, list):
        raise OmeZarrError(f"{where}: coordinateTransformations must be a list, got {transforms!r}")
    for t in transforms:
        kind = t.get("type") if isinstance(t, dict) else None
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise OmeZarrError(f"{where}: unsupported coordinate transformation {t!r}")
        values = t.get(kind)
        if not isinstance(values, list):
            raise OmeZarrError(f"{where}: {kind} transformation without inline values: {t!r}")
        if len(values) != ndim:
            raise OmeZarrError(f"{where}: {kind} has {len(values)} values but the image has {ndim} axes")
        if not all(_is_finite_number(v) for v in values) or (kind == "scale" and not all(v > 0 for v in values)):
            expected = "finite numbers > 0" if kind == "scale" else "finite numbers"
            raise OmeZarrError(f"{where}: {kind} values must be {expected}, got {values!r}")
        if kind == "scale":
            scale = tuple(float(v) for v in values)
        else:
            translation = tuple(float(v) for v in values)
    return scale, translation


def _is_finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _compose(outer: tuple, inner: tuple) -> tuple:
    # Dataset transforms apply first, then the multiscale-wide ones.
    (s_in, t_in), (s_out, t_out) = inner, outer
    scale = tuple(a * b for a, b in zip(s_in, s_out))
    translation = tuple(t * b + u for t, b, u in zip(t_in, s_out, t_out))
    return scale, translation


def parse_image(attrs: dict, url: str) -> dict:
    """Parse the image metadata of a group's attributes.

    Parameters
    ----------
    attrs : dict
        The zarr group attributes.
    url : str
        For error messages.

    Returns
    -------
    dict
        Keys ``version, name, axes, axis_types, units, levels, scales, translations,
        channel_names, written_by_voxelflow`` (whole image, before any slicing).

    Raises
    ------
    OmeZarrError
        If the metadata is missing, of an unknown version, or inconsistent.
    """
    version, section = ome_section(attrs, url)
    if version not in SUPPORTED:
        raise OmeZarrError(f"{url}: unsupported NGFF version {version!r}; supported: {', '.join(SUPPORTED)}")
    multiscales = section.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], dict):
        raise OmeZarrError(f"{url} is not an OME-Zarr image: 'multiscales' is missing or empty")
    ms = multiscales[0]
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise OmeZarrError(f"{url}: multiscales[0] lists no datasets (pyramid levels)")
    raw_axes = ms.get("axes")
    if raw_axes is None:
        raw_axes = ["t", "c", "z", "y", "x"] if version in ("0.1", "0.2") else None
    if not isinstance(raw_axes, list) or not raw_axes:
        raise OmeZarrError(f"{url}: multiscales[0] has no 'axes'")
    names, types, units = [], [], []
    for a in raw_axes:
        if isinstance(a, str):
            names.append(a)
            types.append(axis_type(a))
            units.append(None)
        elif isinstance(a, dict) and isinstance(a.get("name"), str):
            names.append(a["name"])
            types.append(a.get("type"))
            units.append(a.get("unit"))
        else:
            raise OmeZarrError(f"{url}: bad axis entry {a!r}")
    if len(set(names)) != len(names):
        raise OmeZarrError(f"{url}: axis names are not unique: {names}")
    ndim = len(names)
    outer = _scale_and_translation(ms.get("coordinateTransformations"), ndim, f"{url} multiscales")
    levels, scales, translations = [], [], []
    for i, ds in enumerate(datasets):
        if not isinstance(ds, dict) or not isinstance(ds.get("path"), str) or not ds["path"]:
            raise OmeZarrError(f"{url}: dataset {i} has no 'path'")
        inner = _scale_and_translation(ds.get("coordinateTransformations"), ndim, f"{url} dataset {ds['path']!r}")
        scale, translation = _compose(outer, inner)
        levels.append(ds["path"])
        scales.append(scale)
        translations.append(translation)
    if len(set(levels)) != len(levels):
        raise OmeZarrError(f"{url}: dataset paths are not unique: {levels}")
    channels = None
    omero = section.get("omero")
    if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
        channels = tuple(str(c.get("label", i)) if isinstance(c, dict) else str(i) for i, c in enumerate(omero["channels"]))
    extra = ms.get("metadata")
    return {
        "version": version,
        "name": ms.get("name"),
        "axes": tuple(names),
        "axis_types": tuple(types),
        "units": tuple(units),
        "levels": tuple(levels),
        "scales": tuple(scales),
        "translations": tuple(translations),
        "channel_names": channels,
        "written_by_voxelflow": isinstance(extra, dict) and extra.get("writer") == WRITER,
    }


def _multiscale(version, axes, units, paths, scales, translations, name, method) -> dict:
    axis_list = []
    for a, u in zip(axes, units):
        entry = {"name": a, "type": axis_type(a)}
        if u:
            entry["unit"] = u
        axis_list.append(entry)
    datasets = []
    for path, s, t in zip(paths, scales, translations):
        transforms = [{"type": "scale", "scale": [float(v) for v in s]}]
        if any(t):
            transforms.append({"type": "translation", "translation": [float(v) for v in t]})
        datasets.append({"path": path, "coordinateTransformations": transforms})
    ms = {"axes": axis_list, "datasets": datasets}
    if name is not None:
        ms["name"] = str(name)
    ms["type"] = method
    ms["metadata"] = {"writer": WRITER, "method": f"voxelflow.io.blockreduce.block_reduce({method!r})"}
    if version == "0.4":
        ms = {"version": "0.4", **ms}
    return ms


def image_attrs(version, axes, units, paths, scales, translations, name, method, channel_names=None) -> dict:
    """Group attributes of an image in NGFF ``version`` (``'0.4'`` or ``'0.5'``)."""
    section: dict = {"multiscales": [_multiscale(version, axes, units, paths, scales, translations, name, method)]}
    if channel_names is not None:
        section["omero"] = {
            "channels": [
                {"label": str(n), "color": "FFFFFF", "active": True, "window": {"start": 0, "end": 1, "min": 0, "max": 1}}
                for n in channel_names
            ]
        }
        if version == "0.4":
            section["omero"]["version"] = "0.4"
    return section if version == "0.4" else {"ome": {"version": "0.5", **section}}


def label_attrs(version, axes, units, paths, scales, translations, name, method) -> dict:
    """Group attributes of a label image (multiscales plus ``image-label``)."""
    attrs = image_attrs(version, axes, units, paths, scales, translations, name, method)
    if version == "0.4":
        attrs["image-label"] = {"version": "0.4", "source": {"image": "../../"}}
    else:
        attrs["ome"]["image-label"] = {"source": {"image": "../../"}}
    return attrs


def labels_group_attrs(version: str, names: list[str]) -> dict:
    """Attributes of the ``labels`` group listing the label images."""
    if version == "0.4":
        return {"labels": list(names)}
    return {"ome": {"version": "0.5", "labels": list(names)}}
