"""Fixtures of the napari tests (run under Xvfb, real canvas)."""

import pytest


@pytest.fixture(scope="module")
def module_viewer():
    napari = pytest.importorskip("napari")
    # show=True: without a mapped window napari's canvas never renders (blank screenshots).
    viewer = napari.Viewer(show=True)
    # A fixed canvas: napari restores the last window geometry, which other tests change.
    viewer.window.resize(1000, 800)
    yield viewer
    viewer.close()


@pytest.fixture
def viewer(module_viewer):
    """A shown napari viewer with no layers, shared by the tests of one module."""
    module_viewer.layers.clear()
    module_viewer.dims.ndisplay = 2
    yield module_viewer
    module_viewer.layers.clear()
