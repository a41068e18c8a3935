"""Voxel sizes and channel names stored in TIFF files (OME-XML, ImageJ, resolution tags).

Only calibrations that state a physical unit are trusted: OME-XML ``PhysicalSize*``
(micrometres unless a unit is given), ImageJ ``unit`` with the resolution tags and
``spacing``, or resolution tags in centimetres / millimetres / micrometres. Inch
resolutions are what office and web software write by default (72 dpi) and are
ignored, as are tags without a unit: the voxel size is then unknown and must be given.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from voxelflow.errors import ImageFormatError
from voxelflow.io.imagemeta import length_in_um

__all__ = ["TiffCalibration", "ome_pixels", "tiff_calibration"]

_RESUNIT_UM = {3: 1e4, 4: 1e3, 5: 1.0}  # CENTIMETER, MILLIMETER, MICROMETER


@dataclass(frozen=True)
class TiffCalibration:
    """Voxel size (micrometres, None where unknown) and where it came from."""

    z: float | None
    y: float | None
    x: float | None
    source: str


def _tag_ratio(page, name: str) -> float | None:
    tag = page.tags.get(name)
    if tag is None:
        return None
    num, den = tag.value
    return num / den if num and den else None


def _inverse(resolution: float) -> float:
    """Pixel size from pixels per unit; the rational tags approximate, so 12 digits are kept."""
    return float(f"{1.0 / resolution:.12g}")


def ome_pixels(tif, where: str, image: int = 0) -> dict | None:
    """The ``Pixels`` element of OME-XML image ``image`` as a dict, or None if not OME-TIFF.

    Returns
    -------
    dict or None
        ``size`` (dict ``X, Y, Z, C, T`` -> int), ``physical`` (dict ``x, y, z`` ->
        micrometres or None), ``channels`` (list of names or None), ``name``.

    Raises
    ------
    ImageFormatError
        If the OME-XML cannot be parsed or lacks the image.
    """
    if not tif.is_ome:
        return None
    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError as exc:
        raise ImageFormatError(f"{where}: the OME-XML metadata cannot be parsed ({exc})") from exc
    images = [el for el in root if el.tag.endswith("}Image") or el.tag == "Image"]
    if len(images) <= image:
        raise ImageFormatError(f"{where}: the OME-XML metadata has no image {image}")
    pixels = next((el for el in images[image] if el.tag.endswith("Pixels")), None)
    if pixels is None:
        raise ImageFormatError(f"{where}: OME-XML image {image} has no Pixels element")
    size = {k: int(pixels.get(f"Size{k}", 1)) for k in "XYZCT"}
    physical = {}
    for axis in "xyz":
        value = pixels.get(f"PhysicalSize{axis.upper()}")
        unit = pixels.get(f"PhysicalSize{axis.upper()}Unit", "µm")
        physical[axis] = None if value is None else length_in_um(value, unit, f"{where} OME-XML PhysicalSize{axis}")
    names = [c.get("Name") for c in pixels if c.tag.endswith("Channel")]
    channels = [n if n is not None else str(i) for i, n in enumerate(names)] if names else None
    return {"size": size, "physical": physical, "channels": channels, "name": images[image].get("Name")}


def tiff_calibration(tif, page, where: str) -> TiffCalibration:
    """Voxel size of a TIFF file from its OME-XML, ImageJ metadata or resolution tags.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    page : tifffile.TiffPage
        Its first page (resolution tags).
    where : str
        File name for error messages.

    Returns
    -------
    TiffCalibration
        ``z`` is known only from OME-XML or ImageJ ``spacing``.
    """
    ome = ome_pixels(tif, where)
    if ome is not None and any(v is not None for v in ome["physical"].values()):
        p = ome["physical"]
        return TiffCalibration(p["z"], p["y"], p["x"], "the OME-XML PhysicalSize attributes")
    xres, yres = _tag_ratio(page, "XResolution"), _tag_ratio(page, "YResolution")
    ij = tif.imagej_metadata
    if ij is not None:
        unit = ij.get("unit")
        if isinstance(unit, str):
            unit = unit.encode().decode("unicode_escape") if "\\u" in unit else unit
        x = length_in_um(_inverse(xres), unit, f"{where} XResolution") if xres and unit else None
        y = length_in_um(_inverse(yres), unit, f"{where} YResolution") if yres and unit else None
        z = length_in_um(ij["spacing"], unit, f"{where} ImageJ spacing") if ij.get("spacing") and unit else None
        return TiffCalibration(z, y, x, "the ImageJ metadata (unit, spacing, resolution tags)")
    resunit = page.tags.get("ResolutionUnit")
    factor = _RESUNIT_UM.get(int(resunit.value)) if resunit is not None else None
    if factor and xres and yres:
        return TiffCalibration(None, factor * _inverse(yres), factor * _inverse(xres), "the TIFF resolution tags")
    return TiffCalibration(None, None, None, "the TIFF metadata")
