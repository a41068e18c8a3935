"""The ``?slices=[...]`` path suffix: channel and crop selection in one string.

``image.ome.zarr?slices=[0, :100, ::2, -1:]`` selects with numpy semantics on the
full-resolution level: integers drop their axis, slices keep it, ``...`` fills the
missing axes. The same region is then selected at any other pyramid level by
dividing the positions by that level's down-sampling factor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from voxelflow.errors import SliceSyntaxError

__all__ = ["AxisSelection", "parse_slices", "resolve_slices", "scale_selection", "split_slices"]

_MARKER = "?slices="
_INT = re.compile(r"^[+-]?\d+$")


def split_slices(url: str) -> tuple[str, str | None]:
    """Split ``'path?slices=[...]'`` into ``('path', '[...]')``; ``(url, None)`` without a suffix."""
    base, sep, text = str(url).rpartition(_MARKER)
    if not sep:
        return str(url), None
    return base, text


def _int(field: str, part: str, text: str) -> int:
    field = field.strip()
    if not _INT.match(field):
        raise SliceSyntaxError(f"bad slice part {part!r} in {text!r}: {field!r} is not an integer")
    return int(field)


def parse_slices(text: str) -> tuple[int | slice | type(Ellipsis), ...]:
    """Parse ``'[0, :100, ::2, -1:, ...]'`` into a numpy index tuple.

    Parameters
    ----------
    text : str
        Comma-separated integers, ``start:stop:step`` slices (any part may be
        empty) and at most one ``...``, inside square brackets. Whitespace is ignored.

    Returns
    -------
    tuple
        Items are ``int``, ``slice`` or ``Ellipsis``.

    Raises
    ------
    SliceSyntaxError
        Naming the offending part: missing brackets, a non-integer, a zero step,
        too many colons, an empty part, or more than one ``...``.

    Examples
    --------
    >>> parse_slices("[0, :100, ::2, -1:]")
    (0, slice(None, 100, None), slice(None, None, 2), slice(-1, None, None))
    """
    stripped = str(text).strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        raise SliceSyntaxError(f"slices {text!r} must be written in square brackets, e.g. [0, :100, ::2]")
    body = stripped[1:-1].strip()
    if not body:
        return ()
    items: list = []
    for part in body.split(","):
        part = part.strip()
        if not part:
            raise SliceSyntaxError(f"empty slice part in {text!r} (two commas in a row or a trailing comma)")
        if part == "...":
            if Ellipsis in items:
                raise SliceSyntaxError(f"more than one '...' in {text!r}")
            items.append(Ellipsis)
        elif ":" in part:
            fields = part.split(":")
            if len(fields) > 3:
                raise SliceSyntaxError(f"bad slice part {part!r} in {text!r}: at most start:stop:step")
            values = [_int(f, part, text) if f.strip() else None for f in fields]
            values += [None] * (3 - len(values))
            if values[2] == 0:
                raise SliceSyntaxError(f"bad slice part {part!r} in {text!r}: step must not be zero")
            items.append(slice(*values))
        else:
            items.append(_int(part, part, text))
    return tuple(items)


@dataclass(frozen=True)
class AxisSelection:
    """What one axis keeps, in the coordinates of one level.

    ``index`` set: the axis is dropped after taking that position. Otherwise the
    axis keeps ``range(start, stop, step)`` (``start < stop``, ``step > 0``),
    reversed when ``reverse`` is true.
    """

    index: int | None = None
    start: int = 0
    stop: int = 0
    step: int = 1
    reverse: bool = False

    def as_index(self):
        """The numpy index for this axis (an int, or a slice possibly followed by a flip)."""
        if self.index is not None:
            return self.index
        return slice(self.start, self.stop, self.step)


def resolve_slices(items: tuple, shape: tuple[int, ...], axes: tuple[str, ...], text: str = "") -> list[AxisSelection]:
    """Resolve parsed slices against the full-resolution ``shape`` with numpy semantics.

    Parameters
    ----------
    items : tuple
        Output of :func:`parse_slices`.
    shape : tuple of int
        Shape of level 0.
    axes : tuple of str
        Axis names, for error messages.
    text : str
        The original text, for error messages.

    Returns
    -------
    list of AxisSelection
        One per axis of ``shape``.

    Raises
    ------
    SliceSyntaxError
        If there are more items than axes, an integer is out of range, or a slice
        selects nothing on its axis.
    """
    n_fixed = sum(item is not Ellipsis for item in items)
    if n_fixed > len(shape):
        raise SliceSyntaxError(
            f"slices {text!r} index {n_fixed} axes but the image has {len(shape)} axes {axes}"
        )
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = (slice(None),) * (len(shape) - n_fixed)
        items = (*items[:at], *fill, *items[at + 1 :])
    items = (*items, *(slice(None),) * (len(shape) - len(items)))
    out = []
    for item, size, axis in zip(items, shape, axes):
        if isinstance(item, int):
            if not -size <= item < size:
                raise SliceSyntaxError(
                    f"index {item} in slices {text!r} is out of range for axis {axis!r} of length {size}"
                )
            out.append(AxisSelection(index=item % size))
            continue
        picked = range(*item.indices(size))
        if len(picked) == 0:
            raise SliceSyntaxError(
                f"slice {_show(item)} in slices {text!r} selects nothing on axis {axis!r} of length {size}"
            )
        lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
        out.append(AxisSelection(start=lo, stop=hi, step=abs(picked.step), reverse=picked.step < 0))
    return out


def _show(item: slice) -> str:
    parts = ["" if v is None else str(v) for v in (item.start, item.stop, item.step)]
    return ":".join(parts[:2]) + (f":{parts[2]}" if item.step is not None else "")


def scale_selection(sel: list[AxisSelection], ratios: tuple[float, ...], shape: tuple[int, ...]) -> list[AxisSelection]:
    """Map a level-0 selection to a level down-sampled by ``ratios`` with the given ``shape``.

    Positions divide by the ratio (start rounds down, stop rounds up, so the
    region covers at least the level-0 region) and steps shrink by it (at least 1).
    """
    out = []
    for s, r, size in zip(sel, ratios, shape):
        if s.index is not None:
            out.append(AxisSelection(index=min(int(s.index // r), size - 1)))
            continue
        start = min(math.floor(s.start / r + 1e-9), size - 1)
        stop = max(start + 1, min(math.ceil(s.stop / r - 1e-9), size))
        step = max(1, round(s.step / r))
        out.append(AxisSelection(start=start, stop=stop, step=step, reverse=s.reverse))
    return out
