"""ONNX models as ``predict`` callables (``onnx`` extra: onnxruntime).

The file is read once; each process builds one onnxruntime session on first use
(``InferenceSession.run`` may be called from several threads at once), so the
model can be shipped to Dask workers: it pickles as its bytes.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from voxelflow.errors import InvalidInputError, InvalidPathError, OptionalDependencyError
from voxelflow.paths import as_vpath

__all__ = ["OnnxModel", "load_onnx"]

#: Key of the ONNX metadata property that stores the model's halo in voxels
#: (an int or comma-separated ints, one per spatial axis).
HALO_KEY = "voxelflow.halo"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise OptionalDependencyError(
            "ONNX models need onnxruntime: pip install 'voxelflow[onnx]'"
        ) from exc
    return onnxruntime


class OnnxModel:
    """An ONNX network applied to numpy blocks.

    The network takes one float32 input of shape ``(N, C_in, *spatial)`` and
    returns ``(N, C, *spatial')`` (``spatial'`` equal to ``spatial``, or smaller
    by the same amount on both sides for a network without padding).

    Parameters
    ----------
    path : str or os.PathLike
        ``.onnx`` file (local path or fsspec URL).
    threads : int
        onnxruntime intra-op threads per session. 1 by default: ``predict``
        runs one chunk per Dask worker thread, which is where the parallelism
        comes from.
    output : str or int
        Name or index of the output to return.
    channels : int, optional
        Output channel count when the file does not fix it.
    halo : int or sequence of int, optional
        Receptive-field radius in voxels; defaults to the file's
        ``voxelflow.halo`` metadata property, else None.
    providers : list of str, optional
        onnxruntime execution providers (e.g. ``["CUDAExecutionProvider",
        "CPUExecutionProvider"]``); CPU by default.

    Attributes
    ----------
    channels : int
        Output channel count (the ``predict`` protocol).
    halo : tuple of int or None
    spatial_ndim : int
        2 or 3.
    in_channels : int or None

    Raises
    ------
    voxelflow.errors.InvalidPathError
        The file cannot be read.
    voxelflow.errors.InvalidInputError
        The file is not an ONNX model, or its input/output are not
        ``(N, C, *spatial)`` tensors.
    voxelflow.errors.OptionalDependencyError
        onnxruntime is not installed.
    """

    def __init__(self, path, *, threads: int = 1, output: str | int = 0, channels: int | None = None,
                 halo=None, providers: list[str] | None = None):
        self.path = as_vpath(path)
        try:
            data = self.path.read_bytes()
        except (OSError, ValueError) as exc:
            raise InvalidPathError(f"cannot read the ONNX model {self.path.url}: {exc}") from exc
        self._bytes = data
        self._sha256 = hashlib.sha256(data).hexdigest()
        self.threads = int(threads)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self._lock = threading.Lock()
        self._live = None
        session = self._session()
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1:
            raise InvalidInputError(f"{self.path.url}: expected one input tensor, the model has {len(inputs)}")
        shape = inputs[0].shape
        if len(shape) not in (4, 5):
            raise InvalidInputError(
                f"{self.path.url}: expected an input of shape (N, C, Z, Y, X) or (N, C, Y, X), got {shape}"
            )
        self.input_name = inputs[0].name
        self.spatial_ndim = len(shape) - 2
        self.in_channels = shape[1] if isinstance(shape[1], int) else None
        names = [o.name for o in outputs]
        if isinstance(output, str):
            if output not in names:
                raise InvalidInputError(f"{self.path.url}: no output named {output!r}; outputs are {names}")
            index = names.index(output)
        else:
            if not 0 <= output < len(names):
                raise InvalidInputError(f"{self.path.url}: output index {output} out of range; outputs are {names}")
            index = int(output)
        self.output_name = names[index]
        out_shape = outputs[index].shape
        if len(out_shape) != len(shape):
            raise InvalidInputError(
                f"{self.path.url}: output {self.output_name!r} has shape {out_shape}; expected (N, C, *spatial) "
                f"with {self.spatial_ndim} spatial axes"
            )
        fixed = out_shape[1] if isinstance(out_shape[1], int) else None
        if channels is not None and fixed is not None and channels != fixed:
            raise InvalidInputError(f"{self.path.url}: channels={channels} but the model outputs {fixed} channels")
        self.channels = channels if channels is not None else fixed
        if self.channels is None:
            raise InvalidInputError(
                f"{self.path.url}: the output channel count is not fixed in the file; pass channels="
            )
        meta = session.get_modelmeta().custom_metadata_map
        if halo is None and HALO_KEY in meta:
            try:
                halo = [int(v) for v in meta[HALO_KEY].split(",")]
            except ValueError as exc:
                raise InvalidInputError(
                    f"{self.path.url}: metadata {HALO_KEY}={meta[HALO_KEY]!r} is not a list of ints"
                ) from exc
        self.halo = None if halo is None else tuple(np.broadcast_to(np.asarray(halo, int), (self.spatial_ndim,)).tolist())

    def _session(self):
        with self._lock:
            if self._live is None:
                self._live = self._new_session()
            return self._live

    def _new_session(self):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(self._bytes, sess_options=options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InvalidInputError(f"{self.path.url} is not a valid ONNX model: {exc}") from exc

    def _as_batch(self, blocks) -> np.ndarray:
        batch = []
        for block in blocks:
            block = np.asarray(block, dtype=np.float32)
            if block.ndim == self.spatial_ndim:
                block = block[None]
            if block.ndim != self.spatial_ndim + 1:
                raise InvalidInputError(
                    f"{self.path.url} takes blocks with {self.spatial_ndim} spatial axes (and an optional leading "
                    f"channel axis), got shape {block.shape}"
                )
            if self.in_channels is not None and block.shape[0] != self.in_channels:
                raise InvalidInputError(
                    f"{self.path.url} takes {self.in_channels} input channels, got a block of shape {block.shape}"
                )
            batch.append(block)
        return np.stack(batch)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """Run the network on one block.

        Parameters
        ----------
        block : ndarray, shape ``spatial`` or ``(C_in, *spatial)``, any numeric dtype (cast to float32)

        Returns
        -------
        ndarray of float32, shape ``(channels, *spatial')``
        """
        return self.batch([block])[0]

    def batch(self, blocks: list[np.ndarray]) -> list[np.ndarray]:
        """Run equally shaped blocks as one batch (the network's ``N`` axis)."""
        out = self._session().run([self.output_name], {self.input_name: self._as_batch(blocks)})[0]
        return list(out)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"], state["_live"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._live = None

    def __dask_tokenize__(self):
        return ("voxelflow.OnnxModel", self._sha256, self.output_name, self.channels, self.halo)

    def __repr__(self) -> str:
        return f"OnnxModel({self.path.url!r}, channels={self.channels}, halo={self.halo})"


def load_onnx(path, **kwargs) -> OnnxModel:
    """Load an ``.onnx`` file as a ``predict`` callable (see :class:`OnnxModel`)."""
    return OnnxModel(path, **kwargs)
