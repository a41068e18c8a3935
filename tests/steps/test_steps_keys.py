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


USER_SCRIPT = '''
import numpy as np

OFFSET = 1.0


class Model:
    """A model class as a user writes it in a script (module ``__main__``)."""

    def __init__(self, weight):
        self.weight = weight
        self.table = np.arange(4.0)

    def __call__(self, block):
        return block * self.weight + OFFSET

    def describe(self):
        return f"weight {self.weight}"
'''


def _user_class(source=USER_SCRIPT):
    # exec'd into a module namespace named __main__ that is not sys.modules["__main__"]: what pickling
    # libraries see for a class defined in a script run as a program or in a notebook
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<user script>", "exec"), namespace)
    return namespace["Model"], namespace


def test_keying_an_object_of_a_main_class_leaves_the_class_unchanged():
    Model, namespace = _user_class()
    before = dict(vars(Model))

    @step
    def run(x, model):
        return model(x)

    key = run.key(1, Model(2.0))
    after = dict(vars(Model))
    assert all(after[name] is before[name] for name in before)
    assert Model.__call__.__globals__ is namespace
    assert after.keys() == before.keys()
    namespace["OFFSET"] = 5.0  # the user's methods still read the user's globals
    assert Model(2.0)(1.0) == 7.0
    # and the key is what the object is: same state, same key; other state or other code, other key
    assert run.key(1, Model(2.0)) == key
    assert run.key(1, Model(3.0)) != key
    Edited, _ = _user_class(USER_SCRIPT.replace("block * self.weight", "block / self.weight"))
    assert run.key(1, Edited(2.0)) != key


def test_tokens_of_containers_arrays_tables_and_objects():
    from dataclasses import dataclass

    from voxelflow.steps.tokens import token

    @dataclass
    class Options:
        radius: float
        names: tuple

    assert token(Options(1.0, ("a",))) == token(Options(1.0, ("a",)))
    assert token(Options(1.0, ("a",))) != token(Options(2.0, ("a",)))
    assert token({"b": 1, "a": [1, 2]}) == token({"a": [1, 2], "b": 1})
    assert token({1, 2, 3}) == token({3, 2, 1})
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert token(x) == token(x.copy()) == token(np.asfortranarray(x))
    assert token(x) != token(x.astype(np.int64)) and token(x) != token(x.reshape(4, 3))
    assert token(np.array(["a", None], dtype=object)) != token(np.array(["a", "b"], dtype=object))
    table = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert token(table) == token(table.copy())
    assert token(table) != token(table.rename(columns={"b": "c"}))
    assert token(table) != token(table.set_index(pd.Index([5, 6])))
    assert token(np.dtype("float32")) != token(np.dtype("float64"))
    assert token(slice(1, 5)) != token(slice(1, 6)) and token(np.add) != token(np.multiply)
    a, b = Options(1.0, ()), Options(2.0, ())
    assert token(a.__eq__) != token(b.__eq__) != token(b.__repr__)
    with pytest.raises(CacheKeyError, match="lock"):
        token({"inner": [threading.Lock()]}, "options")
    cycle = []
    cycle.append(cycle)
    with pytest.raises(CacheKeyError, match="nested"):
        token(cycle, "cycle")
