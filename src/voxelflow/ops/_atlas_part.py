"""Partial-brain scans: the part of the atlas a scan covers, and which atlas voxels it imaged.

A scan of one hemisphere or of a crop cannot be registered to a whole atlas
(the tissue centres, principal axes and extents do not match), so the atlas is
cropped to the matching part first (:func:`crop_atlas`): a box in atlas
micrometres and/or one hemisphere (the other hemisphere's voxels are blanked).
:func:`detect_hemisphere` tells a hemisphere scan from a whole brain with the
tissue mask of the coarse scan. After registration, :func:`atlas_coverage`
marks the atlas voxels the scan imaged: those inside the part whose position,
mapped back through the registration, lies inside the scan's field of view.

Hemisphere values follow BrainGlobe: 1 = left, 2 = right, 0 = outside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from voxelflow.errors import InvalidInputError
from voxelflow.ops._orientation import parse_orientation, reorient_scale

__all__ = ["SIDES", "AtlasPart", "find_part", "cut_part", "crop_atlas", "detect_hemisphere", "atlas_coverage", "inverse_points"]

#: Hemisphere value of each side name (as in BrainGlobe's hemispheres.tiff).
SIDES = {"left": 1, "right": 2}
#: A scan is one hemisphere when its left-right extent, relative to the atlas brain's, is below this
#: fraction of its other extents' (a half brain gives about 0.5, a whole one about 1).
_HEMISPHERE_RATIO = 0.75


@dataclasses.dataclass(frozen=True)
class AtlasPart:
    """Where a cropped atlas sits in the whole one.

    Attributes
    ----------
    origin : tuple of 3 int
        Atlas voxel index of the crop's first voxel (atlas axes).
    shape : tuple of 3 int
        Shape of the crop.
    side : str
        ``'whole'``, ``'left'`` or ``'right'`` (the hemisphere kept).
    """

    origin: tuple[int, int, int]
    shape: tuple[int, int, int]
    side: str = "whole"

    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + n) for o, n in zip(self.origin, self.shape))

    def to_meta(self) -> dict:
        return {"origin": [int(v) for v in self.origin], "shape": [int(v) for v in self.shape], "side": self.side}

    @classmethod
    def from_meta(cls, meta: dict) -> AtlasPart:
        return cls(tuple(int(v) for v in meta["origin"]), tuple(int(v) for v in meta["shape"]), str(meta["side"]))


def find_part(atlas, box_um: Sequence[float] | None = None, side: str = "whole") -> AtlasPart:
    """The part of ``atlas`` a partial scan covers (see :func:`crop_atlas`)."""
    shape = np.asarray(atlas.shape)
    res = np.asarray(atlas.resolution, dtype=np.float64)
    lo, hi = np.zeros(3, dtype=np.int64), shape.astype(np.int64)
    if box_um is not None and len(box_um):
        box = np.asarray(box_um, dtype=np.float64)
        if box.shape != (6,) or not np.all(np.isfinite(box)) or np.any(box[1::2] <= box[0::2]):
            raise InvalidInputError(f"atlas crop box must be 6 numbers z0, z1, y0, y1, x0, x1 (micrometres, "
                                    f"each lower bound below its upper bound), got {list(box_um)!r}")
        # voxel i is kept when its centre (i + 0.5) * res lies in [lo, hi)
        lo = np.clip(np.ceil(box[0::2] / res - 0.5), 0, shape).astype(np.int64)
        hi = np.clip(np.ceil(box[1::2] / res - 0.5), 0, shape).astype(np.int64)
    if side not in ("whole", *SIDES):
        raise InvalidInputError(f"atlas side must be 'whole', 'left' or 'right', got {side!r}")
    if side != "whole":
        where = np.argwhere(np.asarray(atlas.hemispheres) == SIDES[side])
        if not len(where):
            raise InvalidInputError(f"the atlas has no {side} hemisphere voxels (hemisphere value {SIDES[side]})")
        lo = np.maximum(lo, where.min(axis=0))
        hi = np.minimum(hi, where.max(axis=0) + 1)
    if np.any(hi - lo < 4):
        raise InvalidInputError(f"the atlas part (voxels {lo.tolist()} to {hi.tolist()}) is smaller than 4 voxels "
                                "along an axis; check atlas.crop_um (micrometres, atlas axes)")
    return AtlasPart(tuple(int(v) for v in lo), tuple(int(v) for v in hi - lo), side)


def cut_part(atlas, part: AtlasPart):
    """``atlas`` cropped to ``part`` (same type); for a hemisphere the other one is blanked (0)."""
    sl = part.slices()
    ref, ann, hem = (np.array(a[sl]) for a in (atlas.reference, atlas.annotation, atlas.hemispheres))
    if part.side != "whole":
        other = (hem != SIDES[part.side]) & (hem != 0)
        ref[other] = 0
        ann[other] = 0
        hem[other] = 0
    meta = dict(getattr(atlas, "metadata", {}) or {}, part=part.to_meta())
    return dataclasses.replace(atlas, reference=ref, annotation=ann, hemispheres=hem, metadata=meta)


def crop_atlas(atlas, box_um: Sequence[float] | None = None, side: str = "whole"):
    """The part of ``atlas`` a partial scan covers.

    Parameters
    ----------
    atlas : voxelflow.io.brainglobe.Atlas
    box_um : sequence of 6 float, optional
        ``z0, z1, y0, y1, x0, x1``: a box in micrometres from the atlas corner,
        along the atlas axes. Voxels whose centre lies inside are kept.
    side : {'whole', 'left', 'right'}
        Keep one hemisphere: the box shrinks to its bounding box and the other
        hemisphere's voxels are blanked (template 0, annotation 0, hemispheres 0).

    Returns
    -------
    cropped : Atlas
        Same type as ``atlas``, arrays of shape ``part.shape``.
    part : AtlasPart

    Raises
    ------
    InvalidInputError
        On a malformed box or side, or a part smaller than 4 voxels along an axis.
    """
    part = find_part(atlas, box_um, side)
    return cut_part(atlas, part), part


def detect_hemisphere(coarse, coarse_scale, scan_orientation: str, atlas) -> str:
    """Whether a coarse scan holds the whole brain or one hemisphere (and which).

    The tissue (voxels above the Otsu threshold of the log intensity, largest
    component) is measured along the scan's left-right axis and the two
    others, each relative to the atlas brain's extent along the same
    anatomical axis. A left-right extent below 0.75 of the other ratios is a
    hemisphere; its midline is the end of the left-right axis with the larger
    tissue section (a hemisphere is cut flat there and tapers laterally).

    Parameters
    ----------
    coarse : numpy.ndarray, shape (Z, Y, X), numeric
        The registration channel at about the atlas resolution (scan orientation).
    coarse_scale : sequence of 3 float
        Its voxel size in micrometres.
    scan_orientation : str
    atlas : voxelflow.io.brainglobe.Atlas

    Returns
    -------
    str
        ``'whole'``, ``'left'`` or ``'right'``.
    """
    from skimage.filters import threshold_otsu

    code = parse_orientation(scan_orientation, "scan orientation")
    img = np.log1p(np.maximum(np.asarray(coarse, dtype=np.float64), 0))
    if not img.max() > img.min():
        return "whole"
    tissue, n = ndi.label(img > threshold_otsu(img))
    if n == 0:
        return "whole"
    sizes = np.bincount(tissue.ravel())
    sizes[0] = 0
    tissue = tissue == int(np.argmax(sizes))
    scan_extent = _extent_um(tissue, coarse_scale)
    brain = np.asarray(atlas.annotation) != 0
    atlas_extent = np.asarray(reorient_scale(_extent_um(brain, atlas.resolution), atlas.orientation, code))
    ratio = scan_extent / np.maximum(atlas_extent, 1e-9)
    lr = next(k for k, c in enumerate(code) if c in "lr")
    others = [k for k in range(3) if k != lr]
    if ratio[lr] >= _HEMISPHERE_RATIO * float(np.mean(ratio[others])):
        return "whole"
    profile = tissue.sum(axis=tuple(others)).astype(np.float64)
    idx = np.flatnonzero(profile)
    first, last = int(idx[0]), int(idx[-1])
    band = max(1, (last - first + 1) // 10)
    low_end, high_end = profile[first:first + band].sum(), profile[last + 1 - band:last + 1].sum()
    # the midline is the flat, large end; the tissue lies on the other side of it
    tissue_at_low_index = high_end > low_end
    starts_left = code[lr] == "l"
    return "left" if tissue_at_low_index == starts_left else "right"


def _extent_um(mask: np.ndarray, scale) -> np.ndarray:
    """Extent (um) of a mask along each axis, between the 1st and 99th percentile of its voxels."""
    out = []
    for axis in range(3):
        profile = mask.sum(axis=tuple(k for k in range(3) if k != axis)).astype(np.float64)
        cdf = np.cumsum(profile) / max(profile.sum(), 1.0)
        lo, hi = np.searchsorted(cdf, 0.01), np.searchsorted(cdf, 0.99)
        out.append((hi - lo + 1) * float(scale[axis]))
    return np.asarray(out)


def inverse_points(points_um, registration, iterations: int = 10, tolerance_um: float = 0.01) -> np.ndarray:
    """Fixed-frame points (z, y, x um) that a registration maps onto the given moving-frame points.

    The registration maps ``q`` to ``A(q + d(q))`` (B-spline displacement
    ``d``, then the affine ``A``). The inverse inverts ``A`` exactly and solves
    ``q + d(q) = A^-1 p`` by fixed-point iteration (``d`` is smooth and a few
    voxels long, so a few steps converge), stopping once no point moves more
    than ``tolerance_um``. ``d`` is read through
    :func:`voxelflow.ops._register_result.displacement_sampler` (a float32 field
    sampled a few times per B-spline knot, so memory stays bounded at any atlas
    resolution).

    Parameters
    ----------
    points_um : array_like, shape (N, 3), float
        Moving-frame (atlas) points.
    registration : voxelflow.ops._register.Registration
    iterations : int
    tolerance_um : float

    Returns
    -------
    numpy.ndarray, shape (N, 3), float64
    """
    from voxelflow.ops._register_result import displacement_sampler

    p = np.asarray(points_um, dtype=np.float64).reshape(-1, 3)
    aff = registration.affine
    m = np.asarray(aff.GetMatrix(), dtype=np.float64).reshape(3, 3)
    centre = np.asarray(aff.GetCenter(), dtype=np.float64)
    trans = np.asarray(aff.GetTranslation(), dtype=np.float64)
    xyz = (p[:, ::-1] - centre - trans) @ np.linalg.inv(m).T + centre
    r = xyz[:, ::-1]
    if registration.deformable is None:
        return r
    displacement = displacement_sampler(registration)
    q = r.copy()
    for _ in range(iterations):
        moved = r - displacement(q)
        done = float(np.abs(moved - q).max(initial=0.0)) <= tolerance_um
        q = moved
        if done:
            break
    return q


def atlas_coverage(mapping, atlas_shape, part: AtlasPart | None = None, hemispheres=None,
                   slab_voxels: int = 500_000) -> np.ndarray:
    """The atlas voxels a registered scan imaged.

    A voxel is imaged when it lies in the registered part of the atlas (and,
    for a hemisphere part, is not in the other hemisphere) and its centre,
    mapped back through the registration, falls inside the scan's field of
    view.

    Parameters
    ----------
    mapping : voxelflow.ops._atlas_map.ScanAtlasMap
        Registration of the scan to the (cropped) atlas.
    atlas_shape : sequence of 3 int
        Shape of the whole atlas.
    part : AtlasPart, optional
        Where the registered atlas sits in the whole one (default: all of it).
    hemispheres : numpy.ndarray, shape ``atlas_shape``, optional
        Whole-atlas hemisphere image, needed for a hemisphere part.
    slab_voxels : int
        Atlas voxels mapped per step (bounds memory).

    Returns
    -------
    numpy.ndarray, shape ``atlas_shape``, bool
    """
    reg = mapping.registration
    atlas_shape = tuple(int(n) for n in atlas_shape)
    part = part or AtlasPart((0, 0, 0), atlas_shape)
    if tuple(part.shape) != tuple(reg.moving_shape):
        raise InvalidInputError(f"atlas part of shape {part.shape} differs from the registered atlas grid "
                                f"{tuple(reg.moving_shape)}")
    spacing = np.asarray(reg.moving_spacing, dtype=np.float64)
    box = np.asarray(reg.fixed_shape) * np.asarray(reg.fixed_spacing)
    inside = np.zeros(part.shape, dtype=bool)
    plane = part.shape[1] * part.shape[2]
    step = max(1, slab_voxels // plane)
    yy, xx = np.meshgrid(np.arange(part.shape[1]), np.arange(part.shape[2]), indexing="ij")
    for z0 in range(0, part.shape[0], step):
        z1 = min(z0 + step, part.shape[0])
        zz = np.broadcast_to(np.arange(z0, z1)[:, None, None], (z1 - z0, *yy.shape))
        pts = (np.stack([zz, np.broadcast_to(yy, zz.shape), np.broadcast_to(xx, zz.shape)], axis=-1)
               .reshape(-1, 3) + 0.5) * spacing
        q = inverse_points(pts, reg)
        inside[z0:z1] = np.all((q >= 0) & (q < box), axis=1).reshape(zz.shape)
    out = np.zeros(atlas_shape, dtype=bool)
    out[part.slices()] = inside
    if part.side != "whole":
        if hemispheres is None:
            raise InvalidInputError("atlas_coverage of a hemisphere part needs the atlas hemispheres image")
        hemi = np.asarray(hemispheres)
        out &= (hemi == SIDES[part.side]) | (hemi == 0)
    return out
