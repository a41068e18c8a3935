"""predict(): a model run chunk by chunk with a halo equals the model run once on the padded whole array."""

import gc
import threading
import weakref

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ops_helpers import chunkings
from voxelflow.errors import InvalidInputError
from voxelflow.ops import predict, resolve_halo
from voxelflow.ops._region_reads import region_reader


def smooth(radius):
    """A 'model' whose output at a voxel depends on the input within ``radius`` voxels."""
    return lambda block: ndi.uniform_filter(block.astype(np.float32), 2 * radius + 1, mode="constant")


def whole(model, x, halo, pad_mode):
    out = model(np.pad(x, halo, mode=pad_mode))
    return out[(Ellipsis,) + tuple(slice(halo, halo + s) for s in x.shape)]


@st.composite
def images(draw):
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(1, 14 if ndim == 3 else 30)) for _ in range(ndim))
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(shape, dtype=np.float32)
    return x, draw(chunkings(shape))


#: How the image reaches predict: each kind is read a different way (see ops/_region_reads.py).
SOURCES = ("memory", "store", "store-scaled", "computed")


def as_source(x, chunks, source):
    """``x`` as a dask array with ``chunks``: in memory, read from a zarr store (optionally with an
    element-wise step fused onto the reads), or computed by an op with its own halo (read from its chunks).
    The values are ``x`` in every case."""
    if source == "memory":
        return da.from_array(x, chunks=chunks)
    if source == "computed":
        return da.from_array(x, chunks=chunks).map_overlap(lambda b: b, depth=1, boundary="none")
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=x.shape, chunks=tuple(max(c) for c in chunks),
                          dtype=x.dtype)
    z[...] = x if source == "store" else x / 2
    img = da.from_zarr(z, chunks=chunks)
    return img if source == "store" else img * 2


@settings(max_examples=40)
@given(images(), st.integers(0, 3), st.integers(0, 2), st.sampled_from(["reflect", "symmetric", "edge", "constant"]),
       st.integers(1, 4), st.sampled_from(SOURCES))
def test_chunked_equals_whole_padded_array(case, radius, extra, pad_mode, batch_size, source):
    x, chunks = case
    halo = radius + extra
    model = smooth(radius)
    img = as_source(x, chunks, source)
    if source != "computed":
        assert region_reader(img).direct
    out = predict(img, model, halo=halo, dtype="float32", pad_mode=pad_mode, batch_size=batch_size)
    assert out.chunks == da.from_array(x, chunks=chunks).chunks
    np.testing.assert_allclose(out.compute(), whole(model, x, halo, pad_mode), rtol=0, atol=1e-6)


class CountingStore:
    """An array-like over ``x`` that counts how many chunks it returned are still alive (not freed)."""

    def __init__(self, x):
        self.x, self.shape, self.dtype, self.ndim = x, x.shape, x.dtype, x.ndim
        self.lock = threading.Lock()
        self.alive = self.peak = self.reads = 0

    def _freed(self):
        with self.lock:
            self.alive -= 1

    def __getitem__(self, key):
        out = np.array(self.x[key])
        if out.size == 0:  # dask's probe for the array type
            return out
        with self.lock:
            self.reads += 1
            self.alive += 1
            self.peak = max(self.peak, self.alive)
        weakref.finalize(out, self._freed)
        return out


@pytest.mark.parametrize("grid", [(2, 2, 2), (6, 6, 6)])
def test_chunks_read_from_a_store_do_not_outlive_their_task(grid):
    # every block reads its own halo from the store; no chunk waits in memory for its neighbours, so the
    # number of chunks alive at once is bounded by the worker threads, whatever the volume
    x = np.random.default_rng(5).random(tuple(4 * g for g in grid), dtype=np.float32)
    store = CountingStore(x)
    img = da.from_array(store, chunks=4, asarray=False, lock=False)
    out = predict(img, smooth(1), halo=1, dtype="float32", pad_mode="constant")
    with dask.config.set(scheduler="threads", num_workers=2):
        result = out.compute()
    np.testing.assert_allclose(result, whole(smooth(1), x, 1, "constant"), atol=1e-6)
    gc.collect()
    assert store.alive == 0
    assert store.peak <= 2
    # the price: a chunk is read once per padded region that overlaps it (3 ** 3 inside the volume)
    assert store.reads <= 27 * np.prod(grid)


def test_chunks_computed_upstream_are_shared_between_neighbours():
    # an image that is not a read (here: an op with its own halo) is taken from its chunk results,
    # each computed once
    x = np.random.default_rng(6).random((12, 12, 12), dtype=np.float32)
    store = CountingStore(x)
    img = da.from_array(store, chunks=4, asarray=False, lock=False).map_overlap(lambda b: b, depth=1,
                                                                                 boundary="none")
    assert not region_reader(img).direct
    out = predict(img, smooth(1), halo=1, dtype="float32", pad_mode="constant")
    np.testing.assert_allclose(out.compute(scheduler="sync"), whole(smooth(1), x, 1, "constant"), atol=1e-6)
    assert store.reads == 27


def test_too_small_halo_differs_at_chunk_faces():
    # the reference is sensitive: a halo below the receptive field changes voxels next to chunk faces
    x = np.random.default_rng(0).random((8, 16, 16), dtype=np.float32)
    out = predict(da.from_array(x, chunks=8), smooth(2), halo=1, dtype="float32", pad_mode="constant").compute()
    ref = whole(smooth(2), x, 2, "constant")
    bad = ~np.isclose(out, ref, atol=1e-6)
    near_face = np.zeros(x.shape, bool)
    near_face[:, 7:9, :] = near_face[:, :, 7:9] = True
    assert bad.any() and not (bad & ~near_face).any()


def test_every_block_the_model_sees_is_the_chunk_plus_the_halo():
    seen = []

    def model(block):
        seen.append(block.shape)
        return block.astype(np.float32)

    x = np.zeros((20, 30, 30), np.uint16)
    predict(da.from_array(x, chunks=(5, 10, 7)), model, halo=(1, 2, 3)).compute(scheduler="sync")
    chunk_shapes = {(a + 2, b + 4, c + 6) for a in (5,) for b in (10,) for c in (7, 2)}
    assert set(seen) == chunk_shapes
    assert len(seen) == 4 * 3 * 5


def test_channels_probabilities_classes_and_uint8():
    rng = np.random.default_rng(1)
    x = rng.random((10, 20, 20), dtype=np.float32)

    def two_class(block):
        p = ndi.uniform_filter(block, 3, mode="constant")
        return np.stack([p, 1 - p])

    img = da.from_array(x, chunks=(5, 7, 20))
    ref = whole(two_class, x, 1, "reflect")
    probs = predict(img, two_class, halo=1, channels=2, dtype="float32")
    assert probs.shape == (2, 10, 20, 20) and probs.chunks[0] == (2,)
    np.testing.assert_allclose(probs.compute(), ref, atol=1e-6)
    half = predict(img, two_class, halo=1, channels=2)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half.compute(), ref.astype(np.float16))
    q = predict(img, two_class, halo=1, channels=2, dtype="uint8").compute()
    np.testing.assert_array_equal(q, np.rint(np.clip(ref, 0, 1) * 255).astype(np.uint8))
    classes = predict(img, two_class, halo=1, channels=2, output="classes").compute()
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, np.argmax(ref, axis=0))
    single = predict(img, smooth(1), halo=1, output="classes", threshold=0.6).compute()
    np.testing.assert_array_equal(single, whole(smooth(1), x, 1, "reflect") >= 0.6)


def test_model_attributes_give_channels_and_halo():
    class Model:
        channels = 1
        halo = 2

        def __call__(self, block):
            return ndi.uniform_filter(block, 5, mode="constant")[None]

    x = np.random.default_rng(2).random((12, 12, 12), dtype=np.float32)
    out = predict(da.from_array(x, chunks=4), Model(), dtype="float32", pad_mode="constant").compute()
    np.testing.assert_allclose(out, whole(Model(), x, 2, "constant"), atol=1e-6)


def test_model_without_padding_returns_smaller_blocks():
    # a 'valid' filter: output is the block minus 2 voxels per side
    def valid(block):
        return ndi.uniform_filter(block, 5, mode="constant")[2:-2, 2:-2, 2:-2]

    x = np.random.default_rng(3).random((16, 16, 16), dtype=np.float32)
    out = predict(da.from_array(x, chunks=(5, 8, 16)), valid, halo=3, dtype="float32", pad_mode="edge").compute()
    ref = ndi.uniform_filter(np.pad(x, 2, mode="edge"), 5, mode="constant")[2:-2, 2:-2, 2:-2]
    np.testing.assert_allclose(out, ref, atol=1e-6)
    with pytest.raises(InvalidInputError, match="drops more voxels than the halo"):
        predict(da.from_array(x, chunks=8), valid, halo=1).compute()


def test_input_channel_axis_and_batches():
    calls = []

    class Model:
        def __call__(self, block):
            return ndi.uniform_filter(block[0] - block[1], 3, mode="constant")

        def batch(self, blocks):
            calls.append(len(blocks))
            return [self(b) for b in blocks]

    rng = np.random.default_rng(4)
    x = rng.random((2, 9, 20, 20), dtype=np.float32)
    img = da.from_array(x, chunks=(1, 9, 10, 5))
    out = predict(img, Model(), halo=1, channel_axis=0, batch_size=4, dtype="float32", pad_mode="constant")
    assert out.shape == (9, 20, 20) and out.chunks == ((9,), (10, 10), (5, 5, 5, 5))
    ref = ndi.uniform_filter(x[0] - x[1], 3, mode="constant")
    np.testing.assert_allclose(out.compute(scheduler="sync"), ref, atol=1e-6)
    assert calls == [4, 4]


def test_halo_in_micrometres():
    assert resolve_halo(3, halo_um=4, voxel_size=(5, 2, 2)) == (1, 2, 2)
    assert resolve_halo(3, halo_um=(10, 3, 3), voxel_size=(5, 2, 2)) == (2, 2, 2)
    assert resolve_halo(2, default=3) == (3, 3)
    with pytest.raises(InvalidInputError, match="not both"):
        resolve_halo(3, halo=1, halo_um=2, voxel_size=1)
    with pytest.raises(InvalidInputError, match="voxel_size"):
        resolve_halo(3, halo_um=2)
    with pytest.raises(InvalidInputError, match="whole voxels"):
        resolve_halo(3, halo=1.5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"output": "masks"}, "output must be"),
        ({"pad_mode": "wrap"}, "pad_mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"dtype": "int32"}, "probabilities are stored"),
        ({"output": "classes", "dtype": "int8"}, "unsigned"),
        ({"channels": 0}, "channels"),
        ({"channel_axis": 1}, "channel_axis"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        predict(np.zeros((4, 4, 4), np.float32), smooth(0), **kwargs)


def test_bad_inputs_and_outputs():
    with pytest.raises(InvalidInputError, match="callable"):
        predict(np.zeros((4, 4, 4)), "model.onnx")
    with pytest.raises(InvalidInputError, match="spatial axes"):
        predict(np.zeros((4,)), smooth(0))
    with pytest.raises(InvalidInputError, match="expected \\(C, 4, 4, 4\\)"):
        predict(np.zeros((4, 4, 4)), smooth(0), channels=2).compute()
    with pytest.raises(InvalidInputError, match="NaN"):
        predict(np.zeros((4, 4, 4)), lambda b: np.full(b.shape, np.nan)).compute()
