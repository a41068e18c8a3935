"""The synthetic plaque brain: tissue, bias, noise, plaques (some touching), edge artefacts, an atlas.

See :mod:`voxelflow.synth` for what it plants and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from voxelflow.errors import InvalidInputError
from voxelflow.synth.scoring import truth_counts, truth_objects

__all__ = ["REGIONS", "SyntheticBrain", "make_synthetic_brain"]

# A small Allen-like hierarchy: (id, acronym, name, parent). Only leaves are painted.
REGIONS = pd.DataFrame(
    [
        (997, "root", "root", -1),
        (8, "grey", "Basic cell groups and regions", 997),
        (567, "CH", "Cerebrum", 8),
        (688, "CTX", "Cerebral cortex", 567),
        (315, "Isocortex", "Isocortex", 688),
        (1089, "HPF", "Hippocampal formation", 688),
        (623, "CNU", "Cerebral nuclei", 567),
        (477, "STR", "Striatum", 623),
        (343, "BS", "Brain stem", 8),
        (1129, "IB", "Interbrain", 343),
        (549, "TH", "Thalamus", 1129),
        (1097, "HY", "Hypothalamus", 1129),
        (313, "MB", "Midbrain", 343),
        (1065, "HB", "Hindbrain", 343),
        (512, "CB", "Cerebellum", 8),
    ],
    columns=["id", "acronym", "name", "parent"],
).astype({"id": "int64", "parent": "int64"})


@dataclass(frozen=True)
class SyntheticBrain:
    """A synthetic scan, its atlas and the planted ground truth.

    Attributes
    ----------
    image : numpy.ndarray, shape (Z, Y, X), uint16
        The intensity image (IN).
    atlas : numpy.ndarray, shape (Za, Ya, Xa), uint32
        Region label per atlas voxel (0 = outside the brain); atlas voxel ``j``
        covers image voxels ``j * atlas_factors`` to ``(j + 1) * atlas_factors - 1``.
    regions : pandas.DataFrame
        Region hierarchy: ``id`` (int64), ``acronym``, ``name``, ``parent`` (int64, -1 for root).
    truth : pandas.DataFrame
        One row per planted plaque: ``plaque_id``, ``z, y, x`` (float64 voxel
        centre), ``radius`` (voxels), ``amplitude``, ``region_id`` (int64, atlas
        leaf containing the plaque), ``cluster_id`` (int64; plaques that touch
        share it, so one connected object per cluster), ``cluster_size``.
    scale : tuple of float
        Physical size of an image voxel in micrometres, per axis (z, y, x).
    atlas_scale : tuple of float
        Physical size of an atlas voxel in micrometres (``scale * atlas_factors``).
    atlas_factors : tuple of int
        Image voxels per atlas voxel along each axis.
    tissue : numpy.ndarray, shape (Z, Y, X), bool
        The planted tissue (inside of the ellipsoid).
    edge_margin : float
        Depth in voxels of the tissue shell that holds the edge artefacts; no
        plaque is planted in it.
    """

    image: np.ndarray
    atlas: np.ndarray
    regions: pd.DataFrame
    truth: pd.DataFrame
    scale: tuple[float, float, float]
    atlas_scale: tuple[float, float, float]
    atlas_factors: tuple[int, int, int]
    tissue: np.ndarray
    edge_margin: float

    def truth_objects(self) -> pd.DataFrame:
        """The planted objects as a thresholded, labelled image sees them (see :func:`truth_objects`)."""
        return truth_objects(self.truth)

    def truth_counts(self) -> pd.DataFrame:
        """Planted plaques and objects per region (see :func:`truth_counts`)."""
        return truth_counts(self.truth, self.regions)


def _leaf_partition(u, v, w, rho):
    """Region id from normalised brain coordinates (all in [-1, 1]).

    ``u`` runs anterior->posterior (x), ``v`` dorsal->ventral (y), ``w``
    left->right (z), ``rho`` is the normalised ellipsoid radius.
    """
    ids = REGIONS.set_index("acronym").id
    posterior = u > 0.55
    front = u <= 0.25
    cortex = front & (rho > 0.62) & (v < 0.35)
    core = front & ~cortex & (u >= -0.25)
    choices = [
        (rho > 1.0, 0),
        (posterior & (v < 0.05), ids["CB"]),
        (posterior, ids["HB"]),
        (~front, ids["MB"]),
        (cortex, ids["Isocortex"]),
        (~core, ids["STR"]),
        (v < -0.1, ids["HPF"]),
        (v < 0.3, ids["TH"]),
    ]
    shape = np.broadcast_shapes(u.shape, v.shape, w.shape, rho.shape)
    conds = [np.broadcast_to(c, shape) for c, _ in choices]
    return np.select(conds, [np.uint32(i) for _, i in choices], default=np.uint32(ids["HY"]))


def _norm_coords(shape, centre, semi, factors=(1, 1, 1)):
    """Normalised ellipsoid coordinates of voxel centres of a grid (broadcastable)."""
    axes = []
    for ax, (n, c, a, f) in enumerate(zip(shape, centre, semi, factors)):
        pos = np.arange(n, dtype=np.float32) * f + (f - 1) / 2.0
        sh = [1, 1, 1]
        sh[ax] = n
        axes.append(((pos - c) / a).reshape(sh))
    w, v, u = axes
    rho = np.sqrt(w * w + v * v + u * u)
    return u, v, w, rho


def _smooth_field(shape, rng, strength):
    """A smooth multiplicative field around 1 (separable low-frequency cosines)."""
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(3):
        parts = []
        for ax, n in enumerate(shape):
            k = rng.uniform(0.3, 1.2)
            ph = rng.uniform(0, 2 * np.pi)
            p = np.cos(np.pi * k * np.arange(n, dtype=np.float32) / n + ph)
            sh = [1, 1, 1]
            sh[ax] = n
            parts.append(p.reshape(sh))
        field += parts[0] * parts[1] * parts[2]
    field /= max(float(np.abs(field).max()), 1e-6)
    return 1.0 + strength * field


def _place_plaques(rng, n_plaques, cluster_fraction, radius_range, ok, min_gap, shape):
    """Choose plaque centres and radii; touching clusters overlap, others keep a gap.

    ``ok(points) -> bool array`` says whether a candidate centre may be used.
    Returns arrays (centres (N, 3) float64, radii (N,), cluster ids (N,)).
    """
    centres, radii, clusters = [], [], []
    bounds = []  # (centre, bounding radius) of accepted clusters
    cluster_id = 0
    attempts = 0
    lo, hi = radius_range
    while len(centres) < n_plaques and attempts < 200:
        attempts += 1
        cand = rng.uniform(0, 1, size=(512, 3)) * (np.asarray(shape) - 1)
        cand = cand[ok(cand)]
        for c in cand:
            if len(centres) >= n_plaques:
                break
            size = 1
            if rng.uniform() < cluster_fraction:
                size = int(rng.integers(2, 4))
            rs = rng.uniform(lo, hi, size=size)
            members = [c]
            for k in range(1, size):
                d = rng.normal(size=3)
                d /= np.linalg.norm(d)
                # overlap so the thresholded spheres connect (touching cluster)
                members.append(members[k - 1] + d * (rs[k - 1] + rs[k]) * 0.7)
            members = np.array(members)
            if not ok(members).all():
                continue
            mc = members.mean(axis=0)
            br = float(np.max(np.linalg.norm(members - mc, axis=1) + rs))
            if bounds:
                bc = np.array([b[0] for b in bounds])
                brs = np.array([b[1] for b in bounds])
                if (np.linalg.norm(bc - mc, axis=1) < brs + br + min_gap).any():
                    continue
            bounds.append((mc, br))
            for m, r in zip(members, rs):
                centres.append(m)
                radii.append(r)
                clusters.append(cluster_id)
            cluster_id += 1
    return np.array(centres).reshape(-1, 3), np.array(radii), np.array(clusters, dtype=np.int64)


def _paint_spheres(img, centres, radii, amplitudes):
    """Add flat-topped spheres with a one-voxel soft rim, each in its own local box.

    Overlapping spheres combine by maximum, so a touching cluster is one bright blob.
    """
    shape = np.asarray(img.shape)
    layer = np.zeros(img.shape, dtype=np.float32)
    for c, r, a in zip(centres, radii, amplitudes):
        lo = np.maximum(np.floor(c - r - 1).astype(int), 0)
        hi = np.minimum(np.ceil(c + r + 2).astype(int), shape)
        zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
        prof = a * np.clip(r + 0.5 - d, 0.0, 1.0)
        box = layer[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        np.maximum(box, prof.astype(np.float32), out=box)
    img += layer


def make_synthetic_brain(
    shape: tuple[int, int, int] = (128, 256, 256),
    seed: int = 0,
    *,
    n_plaques: int = 400,
    cluster_fraction: float = 0.08,
    radius_range: tuple[float, float] = (1.5, 5.0),
    scale: tuple[float, float, float] = (4.0, 2.0, 2.0),
    atlas_factors: tuple[int, int, int] = (2, 4, 4),
    tissue_level: float = 400.0,
    background_level: float = 100.0,
    plaque_amplitude: tuple[float, float] = (600.0, 2600.0),
    bias_strength: float = 0.35,
    noise_sigma: float = 20.0,
    n_artefacts: int = 12,
    edge_margin: float = 20.0,
) -> SyntheticBrain:
    """Draw a synthetic lightsheet brain with planted plaques.

    Parameters
    ----------
    shape : tuple of 3 int
        Image shape (Z, Y, X); every axis at least 16.
    seed : int
        Seed of the random generator; the same seed gives the same brain.
    n_plaques : int
        Number of plaques to plant (fewer if the tissue is too small to hold them
        with gaps).
    cluster_fraction : float
        Probability that a planted object is a touching cluster of 2-3 plaques.
    radius_range : (float, float)
        Plaque radii in voxels are drawn uniformly in this range.
    scale : tuple of 3 float
        Physical voxel size in micrometres (z, y, x).
    atlas_factors : tuple of 3 int
        Image voxels per atlas voxel.
    tissue_level, background_level : float
        Mean intensity of tissue and of the background before the bias field.
    plaque_amplitude : (float, float)
        Plaque brightness above the tissue, drawn uniformly.
    bias_strength : float
        The multiplicative bias field ranges over ``1 +- bias_strength``.
    noise_sigma : float
        Standard deviation of the additive Gaussian noise.
    n_artefacts : int
        Number of bright flat patches in the outer tissue shell.
    edge_margin : float
        Physical depth in micrometres of the outer tissue shell; artefacts lie in
        its outer 40 %, plaques deeper than it plus their radius and two voxels.

    Returns
    -------
    SyntheticBrain

    Raises
    ------
    InvalidInputError
        If ``shape`` is not three axes of at least 16 voxels, or a range is empty.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 16:
        raise InvalidInputError(f"shape must be 3 axes of at least 16 voxels, got {shape}")
    if not 0 < radius_range[0] <= radius_range[1]:
        raise InvalidInputError(f"radius_range must be (low, high) with 0 < low <= high, got {radius_range}")
    if len(atlas_factors) != 3 or min(atlas_factors) < 1:
        raise InvalidInputError(f"atlas_factors must be 3 positive ints, got {atlas_factors}")
    rng = np.random.default_rng(seed)
    shape_a = np.asarray(shape, dtype=np.float64)
    centre = (shape_a - 1) / 2.0
    semi = shape_a * np.array([0.44, 0.44, 0.46])

    u, v, w, rho = _norm_coords(shape, centre, semi)
    tissue = rho <= 1.0
    scale = tuple(float(s) for s in scale)
    phys = np.asarray(scale)

    def depth_um(rel_z, rel_y, rel_x):
        """Approximate physical depth below the ellipsoid surface (negative outside)."""
        r = np.sqrt(rel_z**2 + rel_y**2 + rel_x**2)
        dist = np.sqrt((rel_z * semi[0] * phys[0]) ** 2 + (rel_y * semi[1] * phys[1]) ** 2
                       + (rel_x * semi[2] * phys[2]) ** 2)
        # along the ray from the centre, the surface lies at dist / r
        return (1.0 - r) * dist / np.maximum(r, 1e-6)

    img = np.where(tissue, np.float32(tissue_level), np.float32(background_level))
    img = img.astype(np.float32)
    # mild anatomical texture so regions differ a little in brightness
    leaves = _leaf_partition(u, v, w, rho)
    texture = (leaves.astype(np.float32) % 7.0) * (0.02 * tissue_level)
    img += texture

    # atlas at coarse resolution from the same geometry
    fa = tuple(int(f) for f in atlas_factors)
    ashape = tuple(-(-s // f) for s, f in zip(shape, fa))
    ua, va, wa, rhoa = _norm_coords(ashape, centre, semi, fa)
    atlas = _leaf_partition(ua, va, wa, rhoa)

    def region_of(points):
        idx = np.floor(points / np.asarray(fa)).astype(int)
        idx = np.clip(idx, 0, np.asarray(ashape) - 1)
        return atlas[idx[:, 0], idx[:, 1], idx[:, 2]]

    offsets = np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T
    half_atlas = np.asarray(fa, dtype=np.float64) / 2.0 + radius_range[1]

    def ok(points):
        points = np.atleast_2d(points)
        rel = (points - centre) / semi
        depth = depth_um(rel[:, 0], rel[:, 1], rel[:, 2])
        deep = depth > edge_margin + (radius_range[1] + 2) * phys.max()
        labels = np.stack([region_of(points + o * half_atlas) for o in offsets])
        # same region in a neighbourhood: any atlas sampling convention agrees
        uniform = (labels == labels[:1]).all(axis=0) & (labels[0] > 0)
        return deep & uniform

    centres, radii, clusters = _place_plaques(
        rng, n_plaques, cluster_fraction, radius_range, ok, min_gap=3.0, shape=shape
    )
    amps = rng.uniform(*plaque_amplitude, size=len(radii))
    _paint_spheres(img, centres, radii, amps)

    img *= _smooth_field(shape, rng, bias_strength)

    # bright flat patches just inside the tissue surface (edge artefacts)
    for _ in range(n_artefacts):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        p = centre + d * semi * 0.98
        ext = rng.uniform(6, 14)
        lo = np.maximum(np.floor(p - ext).astype(int), 0)
        hi = np.minimum(np.ceil(p + ext + 1).astype(int), shape)
        zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        dep = depth_um((zz - centre[0]) / semi[0], (yy - centre[1]) / semi[1], (xx - centre[2]) / semi[2])
        near = np.sqrt((zz - p[0]) ** 2 + (yy - p[1]) ** 2 + (xx - p[2]) ** 2) < ext
        shell = (dep >= 0) & (dep < 0.4 * edge_margin) & near
        box = img[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        box[shell] += rng.uniform(2000, 4000)

    img += rng.normal(0.0, noise_sigma, size=shape).astype(np.float32)
    image = np.clip(np.rint(img), 0, np.iinfo(np.uint16).max).astype(np.uint16)

    cluster_sizes = np.bincount(clusters)[clusters] if len(clusters) else np.zeros(0, np.int64)
    truth = pd.DataFrame(
        {
            "plaque_id": np.arange(1, len(radii) + 1, dtype=np.int64),
            "z": centres[:, 0].astype(np.float64),
            "y": centres[:, 1].astype(np.float64),
            "x": centres[:, 2].astype(np.float64),
            "radius": radii.astype(np.float64),
            "amplitude": amps.astype(np.float64),
            "region_id": region_of(centres).astype(np.int64),
            "cluster_id": clusters.astype(np.int64),
            "cluster_size": np.asarray(cluster_sizes, dtype=np.int64),
        }
    )
    return SyntheticBrain(
        image=image,
        atlas=atlas,
        regions=REGIONS.copy(),
        truth=truth,
        scale=scale,
        atlas_scale=tuple(s * f for s, f in zip(scale, fa)),
        atlas_factors=fa,
        tissue=tissue,
        edge_margin=float(edge_margin),
    )
