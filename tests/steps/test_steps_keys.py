"""Step keys: code fingerprints ignore docs and comments; inputs carry their keys."""

import threading

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from steps_helpers import import_source
from voxelflow.errors import CacheKeyError, InvalidInputError
from voxelflow.steps import Step, fingerprint, keyed, step

BASE = '''
LIMIT = 3

def f(x, k=2):
    """Docstring."""
    # a comment
    return x * k + LIMIT
'''


def _fp(tmp_path, name, src):
    return fingerprint(import_source(tmp_path, name, src).f)


def test_docstring_comment_and_decorator_edits_keep_the_fingerprint(tmp_path):
    a = _fp(tmp_path, "m_a", BASE)
    edited = BASE.replace('"""Docstring."""', '"""Another docstring,\n    over two lines."""')
    edited = edited.replace("# a comment", "# rewritten comment\n    # and one more")
    edited = edited.replace("return x * k + LIMIT", "return x * k + LIMIT  # trailing")
    assert _fp(tmp_path, "m_b", edited) == a
    decorated = "import functools\n" + BASE.replace("def f(", "@functools.lru_cache\ndef f(")
    assert fingerprint(import_source(tmp_path, "m_c", decorated).f.__wrapped__) == a


@pytest.mark.parametrize(
    "change",
    [
        ("return x * k + LIMIT", "return x * k - LIMIT"),  # code
        ("return x * k + LIMIT", "return x * k + 4"),  # constant in code
        ("LIMIT = 3", "LIMIT = 4"),  # module constant it reads
        ("k=2", "k=5"),  # default value
    ],
)
def test_code_and_constant_edits_change_the_fingerprint(tmp_path, change):
    a = _fp(tmp_path, "m_a", BASE)
    assert _fp(tmp_path, "m_d", BASE.replace(*change)) != a


def test_lambda_fingerprints_differ_by_body():
    f1, f2 = (lambda x: x > 1), (lambda x: x > 2)  # noqa: E731
    assert fingerprint(f1) != fingerprint(f2)


def test_key_binds_defaults_and_follows_input_names():
    @step(kind="IN->IN")
    def scale_by(img, factor=2.0):
        return img * factor

    a = da.ones((8, 8), chunks=4)
    assert scale_by.key(a) == scale_by.key(a, 2.0) == scale_by.key(img=a, factor=2.0)
    assert scale_by.key(a, 3.0) != scale_by.key(a)
    # an array derived from a keyed array follows its key
    k1, k2 = keyed(a, "source-1"), keyed(a, "source-2")
    assert scale_by.key(k1[1:]) == scale_by.key(keyed(a, "source-1")[1:])
    assert scale_by.key(k1[1:]) != scale_by.key(k2[1:])
    assert scale_by.key(k1[1:]) != scale_by.key(k1[2:])


def test_numpy_and_table_inputs_keyed_by_content():
    @step
    def total(x):
        return x

    x = np.arange(10)
    assert total.key(x) == total.key(x.copy())
    assert total.key(x) != total.key(x + 1)
    df = pd.DataFrame({"a": [1, 2]})
    assert total.key(df) == total.key(df.copy())
    assert total.key(df) != total.key(df.assign(a=[1, 3]))


def test_function_arguments_keyed_by_code():
    @step
    def apply(x, fn):
        return fn(x)

    assert apply.key(1, lambda v: v + 1) != apply.key(1, lambda v: v + 2)


def test_unkeyable_argument_is_a_clear_error():
    @step
    def use(x, thing):
        return x

    with pytest.raises(CacheKeyError, match="thing"):
        use.key(1, threading.Lock())


def test_bad_kind_and_bad_call():
    with pytest.raises(InvalidInputError, match="kind"):
        Step(lambda x: x, kind="IN")

    @step
    def one(x):
        return x

    with pytest.raises(InvalidInputError, match="one"):
        one.key(1, 2)


def test_a_helper_change_changes_the_callers_fingerprint(tmp_path):
    src = '''
    def helper(x):
        return x + 1

    def f(x):
        return helper(x) * 2
    '''
    a = _fp(tmp_path, "m_h1", src)
    assert _fp(tmp_path, "m_h2", src.replace("x + 1", "x + 2")) != a
    assert _fp(tmp_path, "m_h3", src.replace("x + 1", "x + 1  # note")) == a
