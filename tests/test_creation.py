"""Creation functions: meshgrid and triangle indices (values, gradients, vmap), the filled/range/identity
constructors and ``tensor``/``as_tensor``/``from_numpy`` against PyTorch (shape, dtype, values), dtype
inference and the default dtype, memory sharing, and bad-input errors."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.errors import DTypeError, EmberError, ShapeError

from helpers import TORCH_DTYPES, assert_close, check_grad, check_jvp, check_vmap, np_of, t64, torch


def same_as_torch(got: ember.Tensor, want) -> None:
    assert tuple(got.shape) == tuple(want.shape)
    assert TORCH_DTYPES[got.dtype] == want.dtype
    assert np.array_equal(np_of(got), want.numpy())


@pytest.fixture
def float64_default():
    old = ember.get_default_dtype()
    ember.set_default_dtype(ember.float64)
    try:
        yield
    finally:
        ember.set_default_dtype(old)


# -- meshgrid ----------------------------------------------------------------------------------------------
GRIDS = [[[1, 2, 3]], [[1, 2], [3, 4, 5]], [[0, 1], [2, 3, 4], [5, 6, 7, 8]], [[7], [1, 2]]]


@pytest.mark.parametrize("indexing", ["ij", "xy"])
@pytest.mark.parametrize("coords", GRIDS, ids=["one", "two", "three", "single"])
def test_meshgrid_matches_torch(coords, indexing):
    got = ember.meshgrid(*[ember.tensor(c) for c in coords], indexing=indexing)
    want = torch.meshgrid(*[torch.tensor(c) for c in coords], indexing=indexing)
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want):
        same_as_torch(g, w)


def test_meshgrid_accepts_a_sequence_and_0d_tensors():
    got = ember.meshgrid([ember.tensor(2.0), ember.tensor([1.0, 3.0])], indexing="xy")
    want = torch.meshgrid([torch.tensor(2.0), torch.tensor([1.0, 3.0])], indexing="xy")
    for g, w in zip(got, want):
        same_as_torch(g, w)


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid_gradients_and_jvp_match_finite_differences(indexing, rng):
    def f(a, b, c):
        x, y, z = ember.meshgrid(a, b, c, indexing=indexing)
        return x * y + ember.sin(z) * x

    xs = [rng.standard_normal(n) for n in (2, 3, 4)]
    check_grad(f, xs)
    check_jvp(f, xs)


def test_meshgrid_gradient_sums_over_the_other_axes():
    a = ember.tensor([1.0, 2.0], requires_grad=True)
    b = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x, y = ember.meshgrid(a, b, indexing="xy")
    (x * y).sum().backward()
    assert a.grad.tolist() == [6.0, 6.0] and b.grad.tolist() == [3.0, 3.0, 3.0]


def test_meshgrid_vmaps_like_a_loop(rng):
    def f(a, b):
        x, y = ember.meshgrid(a, b, indexing="ij")
        return x - 2 * y

    check_vmap(f, [rng.standard_normal((4, 3)), rng.standard_normal(5)], [0, None])
    check_vmap(f, [rng.standard_normal(3), rng.standard_normal((5, 4))], [None, 1])


MESH_ERRORS = [
    (lambda: ember.meshgrid(ember.ones(2, 2)), ShapeError, "0-d or 1-d"),
    (lambda: ember.meshgrid(ember.ones(2), ember.ones(2, dtype=ember.int64)), DTypeError, "same dtype"),
    (lambda: ember.meshgrid(ember.ones(2), indexing="yx"), EmberError, "'yx'"),
    (lambda: ember.meshgrid(), EmberError, "at least one"),
    (lambda: ember.meshgrid([1, 2], [3]), DTypeError, "expected tensors"),
]


@pytest.mark.parametrize("call,cls,detail", MESH_ERRORS, ids=range(len(MESH_ERRORS)))
def test_meshgrid_bad_input_names_the_op(call, cls, detail):
    with pytest.raises(cls) as info:
        call()
    msg = str(info.value)
    assert msg.startswith("meshgrid:") and detail in msg and "test_creation.py" in msg


# -- tril_indices / triu_indices ---------------------------------------------------------------------
@pytest.mark.parametrize("row,col,offset", [(3, 3, 0), (4, 2, 1), (2, 5, -1), (0, 3, 0), (3, 0, 0), (3, 4, -5),
                                            (3, 4, 7), (5, 5, 2), (1, 1, 0)])
@pytest.mark.parametrize("name", ["tril_indices", "triu_indices"])
def test_triangle_indices_match_torch(name, row, col, offset):
    same_as_torch(getattr(ember, name)(row, col, offset), getattr(torch, name)(row, col, offset))


def test_triangle_indices_select_the_triangle_of_numpy():
    a = np.arange(20.0).reshape(4, 5)
    r, c = np_of(ember.tril_indices(4, 5, 1))
    assert np.array_equal(a[r, c], a[np.tril_indices(4, 1, 5)])
    idx = ember.triu_indices(4, 5, dtype=ember.int32)
    assert idx.dtype is ember.int32 and idx.device == ember.device("cpu")


@pytest.mark.parametrize("call,op,detail", [
    (lambda: ember.tril_indices(-1, 3), "tril_indices", "row=-1"),
    (lambda: ember.triu_indices(3, 3, dtype=ember.float32), "triu_indices", "float32"),
])
def test_triangle_indices_bad_input_names_the_op(call, op, detail):
    with pytest.raises(EmberError) as info:
        call()
    assert str(info.value).startswith(op + ":") and detail in str(info.value)


# -- filled, range and identity constructors vs PyTorch -------------------------------------------------
CTORS = [
    ("zeros", lambda m: m.zeros(2, 3)), ("zeros_tuple", lambda m: m.zeros((2, 3))),
    ("zeros_list", lambda m: m.zeros([4])), ("zeros_0d", lambda m: m.zeros(())),
    ("zeros_int8", lambda m: m.zeros(2, dtype=m.int8)), ("ones_bool", lambda m: m.ones(3, dtype=m.bool)),
    ("ones_f16", lambda m: m.ones(2, 2, dtype=m.float16)), ("ones_empty", lambda m: m.ones(0, 3)),
    ("full_int", lambda m: m.full((2,), 1)), ("full_float", lambda m: m.full((2, 1), 1.5)),
    ("full_bool", lambda m: m.full((2,), True)), ("full_complex", lambda m: m.full((2,), 1 + 1j)),
    ("full_cast", lambda m: m.full((3,), 1.7, dtype=m.int64)), ("full_list_size", lambda m: m.full([2, 2], 3)),
    ("zeros_like", lambda m: m.zeros_like(m.ones(2, dtype=m.int32))),
    ("ones_like_dtype", lambda m: m.ones_like(m.ones(2), dtype=m.float64)),
    ("full_like_truncates", lambda m: m.full_like(m.ones(2, dtype=m.int32), 2.5)),
    ("full_like", lambda m: m.full_like(m.zeros(2, 2), 7)),
    ("arange", lambda m: m.arange(5)), ("arange_start", lambda m: m.arange(1, 4)),
    ("arange_step", lambda m: m.arange(5, 0, -2)), ("arange_float", lambda m: m.arange(0, 1, 0.25)),
    ("arange_float_start", lambda m: m.arange(0.0, 3)), ("arange_tenths", lambda m: m.arange(-1.0, 1.0, 0.1)),
    ("arange_f64", lambda m: m.arange(0, 10, 3, dtype=m.float64)),
    ("arange_int_from_floats", lambda m: m.arange(0.5, 3.5, dtype=m.int64)),
    ("arange_empty", lambda m: m.arange(3, 3)),
    ("linspace", lambda m: m.linspace(0, 1, 5)), ("linspace_int", lambda m: m.linspace(0, 10, 5, dtype=m.int64)),
    ("linspace_one", lambda m: m.linspace(2, 3, 1)), ("linspace_zero", lambda m: m.linspace(0, 1, 0)),
    ("linspace_down", lambda m: m.linspace(3, -3, 7, dtype=m.float64)),
    ("logspace", lambda m: m.logspace(0, 2, 3)), ("logspace_base2", lambda m: m.logspace(0, 3, 4, base=2)),
    ("eye", lambda m: m.eye(3)), ("eye_rect", lambda m: m.eye(2, 3)), ("eye_int", lambda m: m.eye(3, dtype=m.int64)),
    ("eye_bool", lambda m: m.eye(2, dtype=m.bool)),
]


@pytest.mark.parametrize("name,call", CTORS, ids=[c[0] for c in CTORS])
def test_constructors_match_torch(name, call):
    got, want = call(ember), call(torch)
    assert tuple(got.shape) == tuple(want.shape)
    assert TORCH_DTYPES[got.dtype] == want.dtype
    assert_close(got.to(ember.complex128), want.to(torch.complex128).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,call", [("empty", lambda m: m.empty(2, 3)),
                                       ("empty_int", lambda m: m.empty((4,), dtype=m.int32)),
                                       ("empty_like", lambda m: m.empty_like(m.ones(2, 1, dtype=m.float64)))])
def test_empty_has_the_shape_and_dtype_of_torch(name, call):
    got, want = call(ember), call(torch)
    assert tuple(got.shape) == tuple(want.shape) and TORCH_DTYPES[got.dtype] == want.dtype


def test_requires_grad_keyword_makes_leaves_and_rejects_integers():
    for t in [ember.zeros(2, requires_grad=True), ember.full((2,), 1.0, requires_grad=True),
              ember.arange(0.0, 3.0, requires_grad=True), ember.eye(2, requires_grad=True),
              ember.ones_like(ember.ones(2), requires_grad=True)]:
        assert t.requires_grad and t.is_leaf
    with pytest.raises(DTypeError, match="requires_grad"):
        ember.arange(3, requires_grad=True)


def test_default_dtype_governs_python_floats(float64_default):
    assert ember.tensor([1.0]).dtype is ember.float64
    assert ember.tensor(1 + 2j).dtype is ember.complex128
    assert ember.zeros(2).dtype is ember.float64 and ember.full((1,), 0.5).dtype is ember.float64
    assert ember.arange(0.0, 1.0, 0.5).dtype is ember.float64 and ember.linspace(0, 1, 3).dtype is ember.float64
    assert ember.eye(2).dtype is ember.float64 and ember.rand(2).dtype is ember.float64
    assert ember.tensor([1, 2]).dtype is ember.int64 and ember.arange(3).dtype is ember.int64


def test_set_default_dtype_rejects_non_floating_types():
    with pytest.raises(DTypeError, match="set_default_dtype"):
        ember.set_default_dtype(ember.int64)


# -- ember.tensor, as_tensor, from_numpy ------------------------------------------------------------------
DATA = [
    ("bool", [True, False]), ("int", [[1, 2], [3, 4]]), ("float", [1, 2.5]), ("int_scalar", 3),
    ("float_scalar", 3.5), ("bool_scalar", True), ("complex", 1 + 2j), ("complex_list", [1, 2 + 1j]),
    ("mixed_bool_int", [True, 2]), ("empty", []), ("empty_rows", [[], []]), ("nested3", [[[1.0]], [[2.0]]]),
    ("np_float64", np.array([1.5, 2.5])), ("np_int32", np.array([1, 2], dtype=np.int32)),
    ("np_bool", np.array([[True], [False]])), ("np_scalar", np.float64(1.5)), ("np_0d", np.array(7, dtype=np.int16)),
    ("np_complex", np.array([1j], dtype=np.complex64)), ("np_uint8", np.arange(3, dtype=np.uint8)),
]


@pytest.mark.parametrize("name,data", DATA, ids=[d[0] for d in DATA])
def test_tensor_infers_dtypes_like_torch(name, data):
    same_as_torch(ember.tensor(data), torch.tensor(data))


@pytest.mark.parametrize("dtype", [ember.int64, ember.int8, ember.float16, ember.bfloat16, ember.float64,
                                   ember.bool, ember.complex64])
def test_tensor_converts_to_a_requested_dtype_like_torch(dtype):
    data = [[1.7, -1.7], [0.0, 2.0]]
    got = ember.tensor(data, dtype=dtype)
    want = torch.tensor(data, dtype=TORCH_DTYPES[dtype])
    assert got.dtype is dtype
    assert_close(got.to(ember.complex128), want.to(torch.complex128).numpy(), rtol=1e-2)


def test_tensor_copies_and_accepts_tensors_and_lists_of_tensors():
    a = np.array([1.0, 2.0])
    t = ember.tensor(a)
    a[0] = 9.0
    assert t.tolist() == [1.0, 2.0]
    src = ember.tensor([1.0, 2.0], requires_grad=True)
    copy = ember.tensor(src)
    assert copy.tolist() == [1.0, 2.0] and not copy.requires_grad and copy.is_leaf
    same_as_torch(ember.tensor([ember.tensor(1.0), ember.tensor(2.0)]),
                  torch.tensor([torch.tensor(1.0), torch.tensor(2.0)]))
    assert ember.tensor([1.0], requires_grad=True).requires_grad


def test_as_tensor_and_from_numpy_share_memory():
    for make in (ember.as_tensor, ember.from_numpy, lambda x: ember.as_tensor(x, dtype=ember.float64)):
        a = np.array([1.0, 2.0, 3.0])
        t = make(a)
        a[0] = 5.0
        assert t.tolist() == [5.0, 2.0, 3.0]
        t.add_(1.0)
        assert a.tolist() == [6.0, 3.0, 4.0]
    strided = np.arange(12.0).reshape(3, 4)[:, ::2]
    view = ember.from_numpy(strided)
    strided[1, 1] = -1.0
    assert view.tolist()[1][1] == -1.0 and tuple(view.shape) == (3, 2)


def test_as_tensor_copies_only_when_it_must():
    a = np.array([1, 2])
    converted = ember.as_tensor(a, dtype=ember.float32)
    a[0] = 7
    assert converted.tolist() == [1.0, 2.0] and converted.dtype is ember.float32
    t = ember.ones(2)
    assert ember.as_tensor(t) is t and ember.as_tensor(t, dtype=ember.float32) is t
    assert ember.as_tensor(t, dtype=ember.float64).dtype is ember.float64
    same_as_torch(ember.as_tensor([1, 2]), torch.as_tensor([1, 2]))


TENSOR_ERRORS = [
    (lambda: ember.tensor([1, "a"]), "tensor"),
    (lambda: ember.tensor(None), "tensor"),
    (lambda: ember.tensor([1.5], dtype="nonsense"), "dtype"),
    (lambda: ember.from_numpy([1, 2]), "from_numpy"),
    (lambda: ember.arange(0, 5, 0), "arange"),
]


@pytest.mark.parametrize("call,op", TENSOR_ERRORS, ids=range(len(TENSOR_ERRORS)))
def test_bad_data_raises_ember_error_naming_the_op(call, op):
    with pytest.raises(EmberError) as info:
        call()
    assert str(info.value).startswith(op + ":") and "test_creation.py" in str(info.value)


@pytest.mark.parametrize("data", [[[1, 2], [3]], [[1.0], [2.0, 3.0]], [[[1]], [2]]])
def test_ragged_lists_raise_ember_error_naming_tensor(data):
    with pytest.raises(EmberError, match="^tensor:"):
        ember.tensor(data)


def test_ragged_lists_with_an_explicit_dtype_raise_ember_error_naming_tensor():
    with pytest.raises(EmberError, match="^tensor:"):
        ember.tensor([[1, 2], [3]], dtype=ember.float32)


@pytest.mark.parametrize("call", [lambda: ember.zeros(-1), lambda: ember.ones(2, -3), lambda: ember.empty(-2),
                                  lambda: ember.eye(-1), lambda: ember.linspace(0, 1, -1)],
                         ids=["zeros", "ones", "empty", "eye", "linspace"])
def test_negative_sizes_raise_ember_error(call):
    with pytest.raises(EmberError):
        call()


def test_arange_rejects_a_step_of_the_wrong_sign_like_torch():
    with pytest.raises(EmberError, match="^arange:"):
        ember.arange(0, 5, -1)


def test_numpy_scalars_inside_lists_keep_their_dtype_like_torch():
    same_as_torch(ember.tensor([np.int32(1), np.int32(2)]), torch.tensor([np.int32(1), np.int32(2)]))
    same_as_torch(ember.tensor([np.float64(1.0), 2.0]), torch.tensor([np.float64(1.0), 2.0]))


def test_float_arange_counts_like_torch_for_inexact_steps():
    for start, end, step in [(0, 1, 0.1), (0, 0.3, 0.1), (1, 2, 1 / 3), (-1, 1, 0.2)]:
        got, want = ember.arange(start, end, step, dtype=ember.float64), torch.arange(start, end, step,
                                                                                      dtype=torch.float64)
        assert tuple(got.shape) == tuple(want.shape)
        assert_close(got, want.numpy(), rtol=1e-12, atol=1e-12)


def test_linspace_endpoints_are_exact():
    x = np_of(ember.linspace(-3.0, 7.0, 11, dtype=ember.float64))
    assert x[0] == -3.0 and x[-1] == 7.0
    assert_close(t64(x), np.linspace(-3.0, 7.0, 11), rtol=0, atol=1e-15)


def test_new_methods_take_the_tensors_dtype_and_device_as_pytorchs_do():
    x, tx = ember.zeros(2, dtype=ember.float64), torch.zeros(2, dtype=torch.float64)
    for name, args in [("new_zeros", (2, 3)), ("new_ones", ((4,),)), ("new_empty", (3, 1)),
                       ("new_full", ((2, 2), 7.5)), ("new_tensor", ([1, 2, 3],))]:
        ours, theirs = getattr(x, name)(*args), getattr(tx, name)(*args)
        assert tuple(ours.shape) == tuple(theirs.shape) and ours.dtype is ember.float64, name
        if name != "new_empty":
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert x.new_zeros(2, dtype=ember.int32).dtype is ember.int32
    assert x.new_ones(2, requires_grad=True).requires_grad


def test_cartesian_prod_matches_torch():
    parts = [np.array([1, 2]), np.array([3, 4, 5]), np.array([6])]
    np.testing.assert_array_equal(ember.cartesian_prod(*map(ember.tensor, parts)).numpy(),
                                  torch.cartesian_prod(*map(torch.from_numpy, parts)).numpy())
    assert ember.cartesian_prod(ember.tensor([1, 2])).tolist() == [1, 2]
