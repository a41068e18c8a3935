"""Synthetic lightsheet-like volumes for the input-format tests (written by other libraries)."""

from __future__ import annotations

import numpy as np


def lightsheet_volume(shape=(12, 40, 56), dtype=np.uint16, seed=0) -> np.ndarray:
    """A volume with what makes real scans hard to read back by mistake.

    Per-plane brightness steps (a plane read twice or out of order changes the
    values), autofluorescence noise, a bright vessel crossing the volume, stripes
    along x and a bright object touching the border. Values use the dtype's range.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    vol = 80 + 40 * rng.random(shape, dtype=np.float32)  # autofluorescence
    vol *= 1.0 + 0.15 * (np.arange(shape[0]) % 4)[:, None, None]  # per-plane brightness steps
    vol += 30 * (1 + np.sin(x / 3.0))  # stripes
    vessel = (y - shape[1] * 0.4 - 0.3 * z) ** 2 + (x - shape[2] * 0.6) ** 2 < 9
    vol[vessel] += 900
    vol[(z - 0) ** 2 + (y - 3) ** 2 + (x - 5) ** 2 < 16] += 1500  # object cut by the border
    vol += z * 7 + y * 0.5  # makes every plane distinct
    if np.dtype(dtype).kind == "f":
        return vol.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(vol * (info.max / 4000.0), 0, info.max).astype(dtype)
