"""Cell candidates on a synthetic two-channel crop (voxelflow.synth_cells), with their ground truth.

Candidates are what a local-contrast threshold finds: planted cells, and the
vessels, fibres and autofluorescent granules planted as false candidates. A
candidate is a cell when its centroid lies within the radius of a planted
cell's centre (so cell fragments and cells cut by the border count as cells).
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from voxelflow.ops import label, object_table
from voxelflow.synth_cells import SyntheticCells, make_synthetic_cells


@dataclass
class Candidates:
    crop: SyntheticCells
    signal: np.ndarray
    background: np.ndarray
    labels: np.ndarray
    table: pd.DataFrame
    is_cell: np.ndarray


def cell_candidates(seed: int = 0, shape=(40, 256, 256)) -> Candidates:
    crop = make_synthetic_cells(shape=shape, seed=seed, n_vessels=30, n_fibres=40, n_granules=150)
    signal = crop.image.astype(np.float32)
    background = crop.background.astype(np.float32)
    local = ndi.uniform_filter(signal, (3, 25, 25))
    bs = (ndi.gaussian_filter(signal, (0.5, 1, 1)) > 1.2 * local) & crop.tissue
    os_arr, _ = label(da.from_array(bs, chunks=(20, 128, 128)))
    labels = os_arr.compute()
    table = object_table(labels, intensity=signal)
    table = table[table.voxels >= 6].reset_index(drop=True)
    spacing = np.asarray(crop.spacing)
    tree = cKDTree(crop.truth[["z_um", "y_um", "x_um"]].to_numpy())
    dist, nearest = tree.query(table[["z", "y", "x"]].to_numpy() * spacing)
    is_cell = dist <= crop.truth["diameter_um"].to_numpy()[nearest] / 2
    return Candidates(crop, signal, background, labels, table, is_cell)
