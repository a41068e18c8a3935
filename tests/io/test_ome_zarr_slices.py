"""The ``?slices=[...]`` syntax: parsing, numpy equivalence, level mapping, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxelflow.errors import SliceSyntaxError
from voxelflow.io.ome_zarr import open_ome_zarr, write_ome_zarr
from voxelflow.io.ome_zarr.slices import parse_slices, resolve_slices, split_slices


def test_parse_examples():
    assert parse_slices("[0, :100, ::2, -1:]") == (0, slice(None, 100), slice(None, None, 2), slice(-1, None))
    assert parse_slices("[ 1 ,...,  3:7:2 ]") == (1, Ellipsis, slice(3, 7, 2))
    assert parse_slices("[]") == ()
    assert parse_slices("[::-1]") == (slice(None, None, -1),)


def test_split_url():
    assert split_slices("s3://b/x.ome.zarr?slices=[0]") == ("s3://b/x.ome.zarr", "[0]")
    assert split_slices("/data/x.ome.zarr") == ("/data/x.ome.zarr", None)


@pytest.mark.parametrize(
    "text,part",
    [
        ("0, 1", "square brackets"),
        ("[0, a:3]", "'a:3'"),
        ("[0, 1.5]", "'1.5'"),
        ("[0,, 1]", "empty slice part"),
        ("[1:2:3:4]", "'1:2:3:4'"),
        ("[::0]", "'::0'"),
        ("[..., 0, ...]", "more than one '...'"),
        ("[0, x]", "'x'"),
    ],
)
def test_bad_syntax_names_the_part(text, part):
    with pytest.raises(SliceSyntaxError, match=part.replace("[", r"\[").replace(".", r"\.")):
        parse_slices(text)


def _text(item) -> str:
    if item is Ellipsis:
        return "..."
    if isinstance(item, int):
        return str(item)
    parts = ["" if v is None else str(v) for v in (item.start, item.stop, item.step)]
    return ":".join(parts)


@st.composite
def selections(draw):
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=4)))
    n = draw(st.integers(0, len(shape)))
    items = []
    for size in shape[:n]:
        if draw(st.booleans()):
            items.append(draw(st.integers(-size, size - 1)))
        else:
            bound = st.none() | st.integers(-size - 2, size + 2)
            step = st.none() | st.integers(-3, 3).filter(lambda s: s != 0)
            items.append(slice(draw(bound), draw(bound), draw(step)))
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    spaces = draw(st.sampled_from(["", " ", "  "]))
    return shape, tuple(items), "[" + f",{spaces}".join(_text(i) for i in items) + "]"


@settings(max_examples=120, deadline=None)
@given(selections())
def test_level0_selection_equals_numpy(case):
    shape, items, text = case
    data = np.arange(int(np.prod(shape))).reshape(shape)
    assert parse_slices(text) == items
    axes = tuple("tczyx"[-len(shape):])
    try:
        expected = data[items]
    except IndexError:
        # numpy refuses the integer; voxelflow refuses it too (or first an empty slice).
        with pytest.raises(SliceSyntaxError, match="out of range|selects nothing"):
            resolve_slices(parse_slices(text), shape, axes, text)
        return
    try:
        sel = resolve_slices(parse_slices(text), shape, axes, text)
    except SliceSyntaxError:
        assert expected.size == 0  # besides numpy's IndexErrors, only empty selections are refused
        return
    got = data[tuple(s.as_index() for s in sel)]
    flips = tuple(slice(None, None, -1) if s.reverse else slice(None) for s in sel if s.index is None)
    np.testing.assert_array_equal(got[flips], expected)


def test_slices_on_written_image_every_level(memory_url):
    data = np.arange(2 * 8 * 32 * 40, dtype=np.uint16).reshape(2, 8, 32, 40)
    url = f"{memory_url}/img.ome.zarr"
    write_ome_zarr(data, url, levels=3, factors=(1, 1, 2, 2), method="nearest", scale=(1, 3, 0.5, 0.5))
    arr, meta = open_ome_zarr(url + "?slices=[1, ..., 8:24, ::2]")
    np.testing.assert_array_equal(arr.compute(), data[1, :, 8:24, ::2])
    assert meta.axes == ("z", "y", "x")
    assert meta.scale == (3.0, 0.5, 1.0)
    assert meta.translation == (0.0, 4.0, 0.0)
    # Level 2 is data[:, :, ::4, ::4] ('nearest'); the same region at that level:
    arr2, meta2 = open_ome_zarr(url + "?slices=[1, ..., 8:24, ::2]", level=2)
    np.testing.assert_array_equal(arr2.compute(), data[1, :, ::4, ::4][:, 2:6, :])
    assert meta2.scale == (3.0, 2.0, 2.0)


@pytest.mark.parametrize(
    "suffix,message",
    [
        ("[0, 0, 0, 0, 0]", "index 5 axes but the image has 4 axes"),
        ("[2]", "index 2 .* out of range for axis 'c' of length 2"),
        ("[:, 50:60]", "selects nothing on axis 'z' of length 8"),
        ("[0, nope]", "'nope'"),
    ],
)
def test_bad_slices_on_open(memory_url, suffix, message):
    url = f"{memory_url}/img.ome.zarr"
    write_ome_zarr(np.zeros((2, 8, 16, 16), np.uint8), url)
    with pytest.raises(SliceSyntaxError, match=message):
        open_ome_zarr(url + "?slices=" + suffix)
