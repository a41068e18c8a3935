"""registration.json is strict JSON, whatever numbers the registration's parameters and QC hold."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxelflow.io.registration_files import registration_folder_files


def strict_loads(data: bytes):
    """Parse like a strict JSON parser: NaN, Infinity and -Infinity are not JSON."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(data, parse_constant=refuse)


def test_an_infinite_metric_margin_is_written_as_a_string_float_reads_back():
    meta = {"parameters": {"metric_mask_um": float("inf"), "affine_levels_um": (800.0, 400.0)},
            "qc": {"jacobian_min": np.float32(-np.inf), "values": np.array([1.5, np.nan])}, "count": np.int64(3)}
    files = registration_folder_files({"affine": "affine text", "deformable": None}, meta)
    back = strict_loads(files["registration.json"])
    assert float(back["parameters"]["metric_mask_um"]) == float("inf")
    assert back["parameters"]["affine_levels_um"] == [800.0, 400.0]
    assert float(back["qc"]["jacobian_min"]) == float("-inf")
    assert back["qc"]["values"][0] == 1.5 and np.isnan(float(back["qc"]["values"][1]))
    assert back["count"] == 3 and back["deformable"] is False
    assert list(files) == ["affine.tfm", "registration.json"]  # the JSON last: a folder with it is complete


@given(st.recursive(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=20))
def test_any_nested_numbers_give_strict_json_that_reads_back(value):
    back = strict_loads(registration_folder_files({"affine": "a", "deformable": None}, {"v": value})["registration.json"])

    def same(a, b):
        if isinstance(a, float):
            return (np.isnan(a) and np.isnan(float(b))) or float(b) == a
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    assert same(value, back["v"])


def test_strict_loads_refuses_what_json_dumps_writes_by_default():
    with pytest.raises(ValueError, match="Infinity"):
        strict_loads(json.dumps({"x": float("inf")}).encode())
