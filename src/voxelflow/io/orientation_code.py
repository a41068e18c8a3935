"""Anatomical orientation codes (the schema; no file access): which 3-letter codes exist and their checks.

A code has one letter per array axis (axis 0 first), as brainglobe-space
defines it: each letter names the anatomical side where the axis *starts*
(where index 0 lies); the axis increases towards the opposite side. ``"asr"``
(the BrainGlobe/Allen atlases) means axis 0 runs from anterior to posterior,
axis 1 from superior to inferior, axis 2 from right to left. Reference:
brainglobe-space ``AnatomicalSpace`` ("to which anatomical direction the 0 of
the stack corresponds along each of the 3 dimensions"),
https://github.com/brainglobe/brainglobe-space. Mapping volumes and points
between codes is :mod:`voxelflow.ops._orientation`.
"""

from __future__ import annotations

import itertools

from voxelflow.errors import OrientationError

__all__ = ["ORIENTATION_CODES", "parse_orientation", "PAIR_OF"]

_PAIRS = (("a", "p"), ("s", "i"), ("l", "r"))
_OPPOSITE = {a: b for pair in _PAIRS for a, b in (pair, pair[::-1])}
PAIR_OF = {letter: k for k, pair in enumerate(_PAIRS) for letter in pair}

#: All 48 valid codes, sorted.
ORIENTATION_CODES = tuple(sorted(
    "".join(pair[flip] for pair, flip in zip((_PAIRS[i] for i in perm), flips))
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((0, 1), repeat=3)
))


def parse_orientation(code, what: str = "orientation") -> str:
    """Check an orientation code and return it in lower case.

    Parameters
    ----------
    code : str
        Three letters, one of ``a/p``, ``s/i``, ``l/r`` each (any case).
    what : str
        Name of the setting, used in the error message.

    Returns
    -------
    str
        The lower-case code.

    Raises
    ------
    OrientationError
        If ``code`` is not a string of three letters naming each anatomical
        axis exactly once.
    """
    if not isinstance(code, str):
        raise OrientationError(f"{what} must be a 3-letter orientation code such as 'asr', got {code!r}")
    low = code.strip().lower()
    if len(low) != 3 or any(c not in PAIR_OF for c in low):
        raise OrientationError(
            f"{what} = {code!r} is not an orientation code: expected 3 letters from a/p, s/i, l/r, "
            "each naming where its axis starts (e.g. 'asr': axis 0 from anterior, axis 1 from superior, "
            "axis 2 from right)"
        )
    if len({PAIR_OF[c] for c in low}) != 3:
        raise OrientationError(
            f"{what} = {code!r} names an anatomical axis twice; each of a/p, s/i, l/r must appear once"
        )
    return low
