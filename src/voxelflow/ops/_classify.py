"""Candidate classification: which objects of an LC table are cells (LC -> LC with ``p_cell``, ``is_cell``).

Thresholding a lightsheet scan finds cells and many other bright things: vessel
segments, fibres, autofluorescent debris that is bright in every channel. Each
candidate is described by features that separate those (size and shape in
micrometres, intensity in the signal and background channels, contrast to the
surrounding tissue) and a scikit-learn random forest trained from a few hundred
annotated points gives each object a probability of being a cell.

Features come from the object table (size, bounding box) and from a cube of
``radius_um`` around each centroid, read chunk by chunk with a halo of that
radius (memory per task: a chunk plus the halo of the OS and of each channel):

==========================  =============================================================
feature                     meaning
==========================  =============================================================
``volume_um3``              voxels times the voxel volume
``extent_{z,y,x}_um``       bounding-box side lengths
``fill``                    voxels / bounding-box voxels
``elongation``              sqrt of largest / smallest eigenvalue of the object's
                            coordinate covariance (in um, inside the cube, each voxel
                            counted as a box); 1 for a ball
``flatness``                sqrt of middle / smallest eigenvalue
``signal_mean``,            mean and maximum of the signal inside the object (cube)
``signal_max``
``signal_ring``             mean signal of the background voxels (label 0) in the cube
``contrast``                ``signal_mean / signal_ring``
``background_mean``,        the same in the background (autofluorescence) channel
``background_ring``,        (with ``background=``); ``background_ratio`` is
``background_ratio``,       ``background_mean / signal_mean``, ``background_contrast``
``background_contrast``,    ``background_mean / background_ring`` and ``excess_ratio``
``excess_ratio``            ``(background_mean - background_ring) / (signal_mean -
                            signal_ring)``: about 0 for cells (signal only), about the
                            channels' gain ratio for autofluorescent structures
``cube_k``                  with ``cube=k``: the signal in a ``k``-voxel cube around the
                            centroid divided by ``signal_ring`` (``k**ndim`` columns)
==========================  =============================================================
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pandas as pd
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from voxelflow.errors import InvalidInputError
from voxelflow.io.cell_classifier import CellClassifier, training_versions
from voxelflow.ops._halo import _region_task, iter_blocks, padded_region

__all__ = ["object_features", "feature_names", "train_classifier", "classify_objects", "match_points",
           "CellClassifier"]

_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


def _voxel_size(voxel_size, ndim):
    size = np.broadcast_to(np.asarray(voxel_size, dtype=float), (ndim,)).copy()
    if not np.all(size > 0):
        raise InvalidInputError(f"voxel_size must be positive micrometres per axis, got {voxel_size!r}")
    return size


def _check_table(table, ndim):
    need = ["id", *_AXES[ndim], "voxels", *(f"{a}0" for a in _AXES[ndim]), *(f"{a}1" for a in _AXES[ndim])]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InvalidInputError(f"the object table lacks the columns {missing} (expected an LC table from object_table)")


def object_features(
    table: pd.DataFrame,
    os_arr,
    signal,
    background=None,
    *,
    voxel_size=1.0,
    radius_um: float = 10.0,
    cube: int | None = None,
) -> pd.DataFrame:
    """Features of every object of an LC table, for :func:`train_classifier`.

    Parameters
    ----------
    table : pandas.DataFrame
        LC table of ``os_arr`` (``object_table``: ``id``, centroid, ``voxels``, bounding box).
    os_arr : dask.array.Array or numpy.ndarray, shape (Z, Y, X) or (Y, X), integer
        The ordinal segmentation the table describes.
    signal : dask.array.Array or numpy.ndarray, same shape
        Signal channel (IN).
    background : dask.array.Array or numpy.ndarray, same shape, optional
        Background / autofluorescence channel.
    voxel_size : float or sequence of float
        Micrometres per voxel along each axis.
    radius_um : float
        Half side of the cube around each centroid used for shape, intensity
        and contrast, in micrometres.
    cube : int, optional
        Also return the signal in a ``cube``-voxel cube around each centroid
        (odd, small: ``cube**ndim`` columns ``cube_0 ..``).

    Returns
    -------
    pandas.DataFrame
        One row per table row, in the table's order: ``id`` then the features
        listed in the module docstring (float64).
    """
    os_arr = da.asarray(os_arr)
    ndim = os_arr.ndim
    if ndim not in (2, 3) or os_arr.dtype.kind not in "iu":
        raise InvalidInputError(f"os_arr must be a 2D/3D integer label image, got {os_arr.dtype} {os_arr.shape}")
    _check_table(table, ndim)
    size = _voxel_size(voxel_size, ndim)
    if not radius_um > 0:
        raise InvalidInputError(f"radius_um must be positive, got {radius_um!r}")
    if cube is not None and (not isinstance(cube, (int, np.integer)) or cube < 1 or cube % 2 == 0):
        raise InvalidInputError(f"cube must be a positive odd number of voxels, got {cube!r}")
    channels = [signal] if background is None else [signal, background]
    channels = [da.asarray(c) for c in channels]
    for name, c in zip(("signal", "background"), channels):
        if c.shape != os_arr.shape:
            raise InvalidInputError(f"{name} has shape {c.shape}, the label image {os_arr.shape}")
    channels = [c.rechunk(os_arr.chunks) for c in channels]
    radius = tuple(math.ceil(radius_um / s) for s in size)
    depth = tuple(max(r, (cube or 1) // 2) for r in radius)

    centres = np.rint(table[list(_AXES[ndim])].to_numpy(float).reshape(-1, ndim)).astype(np.int64)
    centres = np.clip(centres, 0, np.asarray(os_arr.shape) - 1)
    bounds = [np.concatenate([[0], np.cumsum(c, dtype=np.int64)]) for c in os_arr.chunks]
    # each object is handled by the chunk that holds its (rounded) centroid
    owner = [np.searchsorted(b, centres[:, ax], side="right") - 1 for ax, b in enumerate(bounds)]
    flat_owner = np.ravel_multi_index(tuple(owner), os_arr.numblocks)
    ids = table["id"].to_numpy(np.int64)

    token = tokenize(os_arr, *channels, ids, centres, radius, cube, tuple(size))
    name = f"vf-features-{token}"
    dsk, keys, order = {}, [], []
    for k, block in enumerate(iter_blocks(os_arr.chunks)):
        rows = np.flatnonzero(flat_owner == k)
        if rows.size == 0:
            continue
        lo, hi = padded_region(block, depth, os_arr.shape)
        regions = [_region_task(a.name, bounds, lo, hi, a.dtype) for a in (os_arr, *channels)]
        dsk[(name, k)] = (_chunk_features, regions, lo, ids[rows], centres[rows], radius, size, cube)
        keys.append((name, k))
        order.append(rows)
    gather = f"vf-features-gather-{token}"
    dsk[gather] = (list, keys)
    graph = HighLevelGraph.from_collections(gather, dsk, dependencies=[os_arr, *channels])
    parts = Delayed(gather, graph).compute() if keys else []

    columns = _feature_names(ndim, background is not None, cube)
    values = np.full((len(table), len(columns)), np.nan)
    for rows, part in zip(order, parts):
        values[rows] = part
    out = pd.DataFrame(values, columns=columns)
    geometry = _table_features(table, size)
    return pd.concat([pd.DataFrame({"id": ids}), geometry, out], axis=1)


def _table_features(table: pd.DataFrame, size: np.ndarray) -> pd.DataFrame:
    ndim = size.size
    axes = _AXES[ndim]
    extents = np.stack([(table[f"{a}1"] - table[f"{a}0"]).to_numpy(float) for a in axes], axis=1)
    voxels = table["voxels"].to_numpy(float)
    out = {"volume_um3": voxels * float(np.prod(size))}
    for ax, a in enumerate(axes):
        out[f"extent_{a}_um"] = extents[:, ax] * size[ax]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["fill"] = voxels / np.prod(extents, axis=1)
    return pd.DataFrame(out, index=range(len(table)))


def feature_names(ndim: int, with_background: bool = False, cube: int | None = None) -> list[str]:
    """The feature columns :func:`object_features` returns (without ``id``), in order.

    Parameters
    ----------
    ndim : {2, 3}
    with_background : bool
        A background channel is given.
    cube : int, optional
        The ``cube`` argument.

    Returns
    -------
    list of str
    """
    return [*_table_feature_names(ndim), *_feature_names(ndim, with_background, cube)]


def _table_feature_names(ndim: int) -> list[str]:
    return ["volume_um3", *(f"extent_{a}_um" for a in _AXES[ndim]), "fill"]


def _feature_names(ndim: int, with_background: bool, cube: int | None) -> list[str]:
    names = ["elongation", "flatness", "signal_mean", "signal_max", "signal_ring", "contrast"]
    if with_background:
        names += ["background_mean", "background_ring", "background_ratio", "background_contrast", "excess_ratio"]
    if cube:
        names += [f"cube_{i}" for i in range(cube**ndim)]
    return names


def _chunk_features(regions, origin, ids, centres, radius, size, cube):
    labels, signal = np.asarray(regions[0]), np.asarray(regions[1]).astype(np.float64, copy=False)
    background = np.asarray(regions[2]).astype(np.float64, copy=False) if len(regions) > 2 else None
    ndim = labels.ndim
    ncols = len(_feature_names(ndim, background is not None, cube))
    out = np.full((ids.size, ncols), np.nan)
    local = centres - np.asarray(origin)
    for i, (obj, c) in enumerate(zip(ids, local)):
        box = tuple(slice(max(p - r, 0), min(p + r + 1, n)) for p, r, n in zip(c, radius, labels.shape))
        lab = labels[box]
        mask = lab == obj
        ring = lab == 0
        sig = signal[box]
        row = []
        coords = np.argwhere(mask) * size
        # a voxel is a box, not a point: its own variance (size**2 / 12 per axis) keeps
        # one-voxel-thin objects (a single plane of anisotropic voxels) at a finite elongation
        cov = np.diag(size**2 / 12)
        if coords.shape[0] > 1:
            cov = cov + np.cov(coords.T, bias=True)
        eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
        row += [math.sqrt(eig[0] / eig[-1]), math.sqrt(eig[min(1, ndim - 1)] / eig[-1]) if ndim == 3 else 1.0]
        inside = sig[mask]
        s_mean = inside.mean() if inside.size else np.nan
        s_max = inside.max() if inside.size else np.nan
        s_ring = sig[ring].mean() if ring.any() else np.nan
        row += [s_mean, s_max, s_ring, s_mean / s_ring if s_ring else np.nan]
        if background is not None:
            bg = background[box]
            b_mean = bg[mask].mean() if mask.any() else np.nan
            b_ring = bg[ring].mean() if ring.any() else np.nan
            excess = s_mean - s_ring
            row += [b_mean, b_ring, b_mean / s_mean if s_mean else np.nan, b_mean / b_ring if b_ring else np.nan,
                    (b_mean - b_ring) / excess if excess else np.nan]
        if cube:
            half = cube // 2
            sl = tuple(slice(p - half, p + half + 1) for p in c)
            pad = [(max(0, -s.start), max(0, s.stop - n)) for s, n in zip(sl, labels.shape)]
            sl = tuple(slice(max(s.start, 0), min(s.stop, n)) for s, n in zip(sl, labels.shape))
            values = np.pad(signal[sl], pad, mode="edge").ravel()
            row += list(values / s_ring if s_ring else values * np.nan)
        out[i] = row
    return out


def train_classifier(
    features: pd.DataFrame,
    is_cell,
    *,
    columns: list[str] | None = None,
    n_estimators: int = 300,
    cv: int = 5,
    threshold: float = 0.5,
    seed: int = 0,
    radius_um: float | None = None,
) -> CellClassifier:
    """Train a random forest on annotated objects and cross-validate it.

    Parameters
    ----------
    features : pandas.DataFrame
        Rows of :func:`object_features` for the annotated objects.
    is_cell : array-like of bool, shape (n,)
        Annotation of each row.
    columns : list of str, optional
        Feature columns to use; all but ``id`` by default.
    n_estimators, seed
        Forest size and random seed.
    cv : int
        Folds of the stratified cross-validation (reduced to the smaller class count).
    threshold : float
        Stored as the classifier's ``is_cell`` threshold.
    radius_um : float, optional
        The ``radius_um`` the features were computed with, stored so that the
        classifier is applied to features of the same cube.

    Returns
    -------
    CellClassifier
        Fitted on all rows; ``cv_score`` is the mean balanced accuracy over folds.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    y = np.asarray(is_cell).astype(bool)
    if y.shape != (len(features),):
        raise InvalidInputError(f"is_cell has {y.size} values for {len(features)} feature rows")
    counts = {"cell": int(y.sum()), "not_cell": int((~y).sum())}
    if min(counts.values()) < 2:
        raise InvalidInputError(f"training needs at least 2 annotated objects of each class, got {counts}")
    columns = [c for c in features.columns if c != "id"] if columns is None else list(columns)
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise InvalidInputError(f"feature columns {missing} are not in the feature table")
    x = features[columns].to_numpy(np.float64, copy=True)
    x[~np.isfinite(x)] = np.nan
    forest = RandomForestClassifier(n_estimators=n_estimators, class_weight="balanced", random_state=seed,
                                    min_samples_leaf=1, n_jobs=1)
    folds = StratifiedKFold(n_splits=min(cv, min(counts.values())), shuffle=True, random_state=seed)
    score = float(np.mean(cross_val_score(forest, x, y.astype(int), cv=folds, scoring="balanced_accuracy")))
    forest.fit(x, y.astype(int))
    return CellClassifier(forest, columns, training_versions(), float(threshold), score, counts,
                          None if radius_um is None else float(radius_um))


def classify_objects(table: pd.DataFrame, features: pd.DataFrame, classifier: CellClassifier,
                     threshold: float | None = None) -> pd.DataFrame:
    """The LC table with ``p_cell`` (float64) and ``is_cell`` (bool) added, matched on ``id``.

    Parameters
    ----------
    table : pandas.DataFrame
        LC table.
    features : pandas.DataFrame
        :func:`object_features` of the same objects (any row order).
    classifier : CellClassifier
    threshold : float, optional
        Overrides ``classifier.threshold``.
    """
    if "id" not in table.columns or "id" not in features.columns:
        raise InvalidInputError("both the object table and the features need an 'id' column")
    lookup = pd.Series(np.arange(len(features)), index=features["id"].to_numpy())
    if not table["id"].isin(lookup.index).all():
        raise InvalidInputError("some objects of the table have no feature row (features of another table?)")
    rows = lookup.loc[table["id"].to_numpy()].to_numpy()
    p = classifier.p_cell(features.iloc[rows])
    out = table.copy()
    out["p_cell"] = p
    out["is_cell"] = p >= (classifier.threshold if threshold is None else threshold)
    return out


def match_points(table: pd.DataFrame, points, *, voxel_size=1.0, max_distance_um: float = 5.0) -> np.ndarray:
    """Object id nearest to each annotated point (0 if none within ``max_distance_um``).

    Parameters
    ----------
    table : pandas.DataFrame
        LC table (centroids ``z, y, x`` in voxels).
    points : array-like, shape (n, ndim)
        Annotated points in voxels of the same grid (e.g. a napari Points
        layer's data divided by its scale).
    voxel_size : float or sequence of float
        Micrometres per voxel, so the distance is physical.
    max_distance_um : float

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=float)
    ndim = 3 if "z" in table.columns else 2
    if points.ndim != 2 or points.shape[1] != ndim:
        raise InvalidInputError(f"points must have shape (n, {ndim}), got {points.shape}")
    if len(table) == 0 or len(points) == 0:
        return np.zeros(len(points), np.int64)
    size = _voxel_size(voxel_size, ndim)
    tree = cKDTree(table[list(_AXES[ndim])].to_numpy(float) * size)
    dist, row = tree.query(points * size, distance_upper_bound=max_distance_um)
    ids = np.zeros(len(points), np.int64)
    hit = np.isfinite(dist)
    ids[hit] = table["id"].to_numpy(np.int64)[row[hit]]
    return ids
