"""The NAS-Bench-101 network as Flax modules (reference spec §5).

A cell (``ModelSpec``) compiles to a :class:`Network`: a conv3x3-BN-ReLU stem, ``num_stacks``
stacks of ``num_modules_per_stack`` copies of the cell (max-pool 2x2 and channel doubling before
every stack but the first), global average pooling and a dense head. Every layer, initialiser,
channel split and batch-norm setting is the original's, so parameter counts equal the dataset's
``trainable_parameters`` exactly::

    >>> from nasbench_jax import ModelSpec
    >>> from nasbench_jax.model import trainable_parameters, compute_vertex_channels
    >>> spec = ModelSpec([[0, 1], [0, 0]], ["input", "output"])
    >>> trainable_parameters(spec)
    882570
    >>> compute_vertex_channels(8, 8, [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    [8, 4, 4, 8]

Building and running a network (``config`` is ``configs/nasbench101.py`` or ``cpu_tiny.py``)::

    net = build_network(spec, config)
    variables = net.init(jax.random.key(0), images, train=False)   # {'params', 'batch_stats'}
    logits, updates = net.apply(variables, images, train=True, mutable=['batch_stats'])

Parameter paths are stable and readable: ``stem/kernel``, ``stack{s}/module{m}/vertex{j}/kernel``
(conv vertices), ``stack{s}/module{m}/input_projection{j}/...`` (the 1x1 projection of the cell
input feeding vertex ``j``), ``stack{s}/module{m}/output_projection/...`` and ``dense/kernel``.
Each conv-BN-ReLU layer holds ``kernel`` (HWIO), ``scale`` and ``bias`` in ``params`` and ``mean``
and ``var`` in ``batch_stats``.

Batch normalisation follows TF1's fused batch norm (what the original ran): training normalises
with the biased batch variance, the moving variance is updated with the *unbiased* (Bessel
corrected) batch variance, ``moving <- momentum * moving + (1 - momentum) * batch``. Statistics
are per device (no ``axis_name``), like the original's TPU shards.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.errors import ConfigError, NASBenchError, SpecError
from nasbench_jax.spec import ModelSpec, check_spec

__all__ = [
    "Cell",
    "Stack",
    "ConvBnRelu",
    "ModelInputError",
    "ModelTypeError",
    "Network",
    "build_network",
    "cell_parameters",
    "compute_vertex_channels",
    "count_params",
    "network_channels",
    "trainable_parameters",
]


class ModelInputError(NASBenchError, ValueError):
    """Images (or another runtime input) given to a :class:`Network` have the wrong shape/dtype."""


#: Conv kernel initialiser: TF ``variance_scaling_initializer()`` defaults (reference spec §5.4).
conv_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
#: Dense head: ``tf.layers.dense`` defaults (Glorot uniform kernel, zero bias).
dense_kernel_init = nn.initializers.glorot_uniform()

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


# ------------------------------------------------------------------------------------------
# Channel rule and closed-form parameter count
# ------------------------------------------------------------------------------------------
def _as_cell_matrix(matrix: Any) -> np.ndarray:
    try:
        m = np.asarray(matrix)
    except ValueError as e:
        raise SpecError(f"matrix must be a square 2-D 0/1 array: {e}") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise SpecError(f"matrix must be a square V x V array with V >= 2, got shape {m.shape}")
    if m.dtype == object or not (np.issubdtype(m.dtype, np.number) or m.dtype == np.bool_):
        raise SpecError(f"matrix must hold 0/1 numbers, got dtype {m.dtype}")
    if not np.all((m == 0) | (m == 1)):
        raise SpecError("matrix entries must be 0 or 1")
    if np.any(np.tril(m)):
        raise SpecError("matrix must be upper triangular")
    return m.astype(np.int64)


def _check_channels(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return int(value)


def compute_vertex_channels(in_channels: int, out_channels: int, matrix: Any) -> list[int]:
    """Channels of every vertex of a pruned cell (the original ``compute_vertex_channels``).

    The output's ``out_channels`` are split as evenly as possible between the interior vertices
    that feed the output (remainder one each to the lowest-indexed ones); every other interior
    vertex takes the largest channel count among its interior successors, so truncation only ever
    drops channels (reference spec §5.3).

    Args:
      in_channels: ``C_in``, channels of the cell input (stored as ``vc[0]``; never used to size
        anything, the input is always projected).
      out_channels: ``C_out``, channels of the cell output.
      matrix: ``V x V`` strictly upper-triangular 0/1 matrix of a *pruned* cell.

    Returns:
      ``vc``, a list of ``V`` ints: ``vc[0] = in_channels``, ``vc[V-1] = out_channels``.

    Raises:
      SpecError: ``matrix`` is malformed, or not pruned (an interior vertex gets no channels).
      ConfigError: a channel count is not a positive integer, or ``out_channels`` is smaller
        than the number of vertices that feed the output (one would get 0 channels).

    >>> compute_vertex_channels(8, 15, [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    [8, 8, 7, 15]
    """
    in_channels = _check_channels("in_channels", in_channels)
    out_channels = _check_channels("out_channels", out_channels)
    m = _as_cell_matrix(matrix)
    v = m.shape[0]
    vc = [0] * v
    vc[0] = in_channels
    vc[v - 1] = out_channels
    if v == 2:
        return vc
    feeds_out = [j for j in range(1, v - 1) if m[j, v - 1]]
    if not feeds_out:
        raise SpecError("no interior vertex feeds the output: the matrix is not a pruned cell")
    if out_channels < len(feeds_out):
        raise ConfigError(
            f"out_channels={out_channels} is smaller than the {len(feeds_out)} vertices feeding "
            "the output; each needs at least one channel"
        )
    base, rem = divmod(out_channels, len(feeds_out))
    for j in feeds_out:
        vc[j] = base + (1 if rem > 0 else 0)
        if rem > 0:
            rem -= 1
    for j in range(v - 3, 0, -1):
        if not m[j, v - 1]:
            vc[j] = max([vc[w] for w in range(j + 1, v - 1) if m[j, w]], default=0)
    for j in range(1, v - 1):
        if vc[j] <= 0:
            raise SpecError(
                f"vertex {j} gets no channels: it reaches neither the output nor another vertex "
                "(the matrix is not a pruned cell)"
            )
        for w in range(j + 1, v - 1):
            if m[j, w] and vc[j] < vc[w]:  # the original's assertion; cannot fail by construction
                raise SpecError(f"vertex {j} has fewer channels than its successor {w}")
    return vc


def network_channels(
    stem_filter_size: int, num_stacks: int, num_modules_per_stack: int
) -> list[tuple[int, int]]:
    """``(C_in, C_out)`` of every module of the network in order (reference spec §5.1).

    Returns:
      ``num_stacks * num_modules_per_stack`` pairs; stack ``s`` has ``C_out = stem * 2**s``.
    """
    pairs = []
    channels = stem_filter_size
    for s in range(num_stacks):
        in_ch = channels
        if s > 0:
            channels *= 2
        for _ in range(num_modules_per_stack):
            pairs.append((in_ch, channels))
            in_ch = channels
    return pairs


def _op_kernel_size(op: str) -> int:
    if op == C.CONV3X3:
        return 3
    if op == C.CONV1X1:
        return 1
    if op == C.MAXPOOL3X3:
        return 0
    raise SpecError(f"unsupported op {op!r} (available ops = {list(C.AVAILABLE_OPS)})")


def cell_parameters(in_channels: int, out_channels: int, matrix: Any, ops: Sequence[str]) -> int:
    """Trainable parameters of one module (cell instance) in closed form (reference spec §5.6).

    Args:
      in_channels, out_channels: ``C_in`` and ``C_out`` of the module.
      matrix: pruned ``V x V`` adjacency; ``ops``: its ``V`` labels (input ... output).

    Returns:
      conv kernels plus BN scale and bias of every projection and conv vertex.

    Raises:
      SpecError, ConfigError: as :func:`compute_vertex_channels`; unknown interior ops.
    """
    m = _as_cell_matrix(matrix)
    v = m.shape[0]
    if len(ops) != v:
        raise SpecError(f"ops has {len(ops)} labels for a {v}-vertex matrix")
    vc = compute_vertex_channels(in_channels, out_channels, m)
    total = 0
    for j in range(1, v - 1):
        if m[0, j]:
            total += in_channels * vc[j] + 2 * vc[j]
        k = _op_kernel_size(ops[j])
        if k:
            total += k * k * vc[j] * vc[j] + 2 * vc[j]
    if m[0, v - 1] or v == 2:
        total += in_channels * out_channels + 2 * out_channels
    return total


def trainable_parameters(
    spec: ModelSpec,
    *,
    stem_filter_size: int = 128,
    num_stacks: int = 3,
    num_modules_per_stack: int = 3,
    num_labels: int = 10,
    image_channels: int = 3,
) -> int:
    """The original's ``trainable_parameters`` of a cell's network, in closed form (§5.6).

    Counts conv kernels, BN scale and offset and the dense kernel and bias; no model is built.

    Args:
      spec: a cell in the search space (pruned internally by ``ModelSpec``).
      stem_filter_size, num_stacks, num_modules_per_stack, num_labels: the network config.
      image_channels: channels of the input images (3 for CIFAR-10).

    Returns:
      The number of trainable scalars (2,694,282 for the README Inception-like cell).

    Raises:
      OutOfDomainError: ``spec`` is not in the space (``check_spec``).
      ConfigError: a config value is not a positive integer or leaves a vertex without channels.
    """
    _check_spec(spec)
    stem = _check_channels("stem_filter_size", stem_filter_size)
    stacks = _check_channels("num_stacks", num_stacks)
    per_stack = _check_channels("num_modules_per_stack", num_modules_per_stack)
    labels = _check_channels("num_labels", num_labels)
    img = _check_channels("image_channels", image_channels)
    total = 9 * img * stem + 2 * stem
    cache: dict[tuple[int, int], int] = {}
    pairs = network_channels(stem, stacks, per_stack)
    for pair in pairs:
        if pair not in cache:
            cache[pair] = cell_parameters(pair[0], pair[1], spec.matrix, spec.ops)
        total += cache[pair]
    final = pairs[-1][1]
    return total + final * labels + labels


def count_params(variables_or_params: Any) -> int:
    """Number of scalars in a parameter pytree.

    Args:
      variables_or_params: the ``params`` tree, or a variables dict with a ``'params'`` entry
        (whose other collections, e.g. ``batch_stats``, are then ignored). Leaves may be arrays
        or ``jax.ShapeDtypeStruct`` (from ``jax.eval_shape``).

    Returns:
      The total element count of the leaves.
    """
    tree = variables_or_params
    if isinstance(tree, Mapping) and "params" in tree:
        tree = tree["params"]
    return int(sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(tree)))


def _check_spec(spec: Any) -> None:
    if not isinstance(spec, ModelSpec):
        raise ModelTypeError(f"expected a nasbench_jax.ModelSpec, got {type(spec).__name__}")
    check_spec(spec)


class ModelTypeError(NASBenchError, TypeError):
    """An argument of the model API has the wrong type (e.g. not a ``ModelSpec``)."""


# ------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------
class ConvBnRelu(nn.Module):
    """Conv (stride 1, SAME, no bias) - BN - ReLU (the original ``conv_bn_relu``, spec §5.4).

    Attributes:
      features: output channels. kernel_size: 1 or 3.

    Params: ``kernel`` float32 ``[k, k, C_in, features]`` plus the BN ``scale``/``bias``.
    """

    features: int
    kernel_size: int
    bn_momentum: float = 0.997
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """``x: [B, H, W, C_in]`` (compute dtype) -> ``[B, H, W, features]``."""
        k = self.kernel_size
        shape = (k, k, x.shape[-1], self.features)
        # self.variable rather than self.param: identical initial values (the same 'params' RNG
        # stream), but applying the model skips param's per-call eval_shape of the initialiser
        # (a fifth of the train step's tracing time).
        kernel = self.variable(
            "params", "kernel", lambda: conv_kernel_init(self.make_rng("params"), shape, jnp.float32)
        ).value
        return _conv_bn_relu(self, x, kernel, train)


# ------------------------------------------------------------------------------------------
# Kernels. Same mathematics as lax.conv / nn.max_pool, formulated for fast XLA:CPU code:
#  * a 1x1 conv is a matmul over [B*H*W, C]; its kernel gradient X^T G is written as an explicit
#    transpose + matmul (XLA otherwise emits a layout copy and a slow transposed-operand dot);
#  * max-pool gradients avoid XLA's select-and-scatter, which XLA:CPU expands into full-size
#    iota index tensors and a scatter (the largest non-conv cost of the first Flax sketch).
# "reference" switches back to lax.conv_general_dilated / nn.max_pool (tests compare the two).
# ------------------------------------------------------------------------------------------
#: ``"fast"`` (default) or ``"reference"``: which formulation of convs and pools is traced.
_KERNELS = "fast"


def _conv(x: jax.Array, kernel: jax.Array, kernels: str) -> jax.Array:
    """Stride-1 SAME convolution, NHWC x HWIO -> NHWC, no bias."""
    if kernels == "fast" and kernel.shape[0] == 1 and kernel.shape[1] == 1:
        return _matmul_1x1(x, kernel[0, 0])
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@jax.custom_vjp
def _matmul_1x1(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x: [B, H, W, C] @ w: [C, O] -> [B, H, W, O]`` (a 1x1 convolution)."""
    return jax.lax.dot_general(x, w, (((3,), (0,)), ((), ())))


def _matmul_1x1_fwd(x, w):
    return _matmul_1x1(x, w), (x, w)


def _matmul_1x1_bwd(res, g):
    x, w = res
    dx = jax.lax.dot_general(g, w, (((3,), (1,)), ((), ())))
    n = x.shape[0] * x.shape[1] * x.shape[2]
    dw = jnp.transpose(x.reshape(n, x.shape[3])) @ g.reshape(n, g.shape[3])
    return dx, dw.astype(w.dtype)


_matmul_1x1.defvjp(_matmul_1x1_fwd, _matmul_1x1_bwd)


def _pool_padding(size: int, window: int, stride: int) -> tuple[int, int, int]:
    """TF/XLA SAME geometry: ``(out, pad_before, pad_after)``."""
    out = -(-size // stride)
    pad = max((out - 1) * stride + window - size, 0)
    return out, pad // 2, pad - pad // 2


def _pool_windows(xp: jax.Array, window: int, stride: int, oh: int, ow: int):
    """The window taps of a padded input, row-major: ``(i, j, xp[:, i::s, j::s, :])``."""
    b, _, _, c = xp.shape
    for i in range(window):
        for j in range(window):
            yield i, j, jax.lax.slice(
                xp,
                (0, i, j, 0),
                (b, i + stride * (oh - 1) + 1, j + stride * (ow - 1) + 1, c),
                (1, stride, stride, 1),
            )


def _pool_pad(x: jax.Array, window: int, stride: int):
    _, h, w, _ = x.shape
    oh, ph0, ph1 = _pool_padding(h, window, stride)
    ow, pw0, pw1 = _pool_padding(w, window, stride)
    neg = jnp.array(-jnp.inf, x.dtype)
    xp = jax.lax.pad(x, neg, ((0, 0, 0), (ph0, ph1, 0), (pw0, pw1, 0), (0, 0, 0)))
    return xp, oh, ow, ph0, pw0


_ARG_DTYPE = jnp.int8


def _max_pool_with_argmax(x: jax.Array, window: int, stride: int):
    """``(out, tap)``: the window maxima and the row-major index of the first maximum (int8)."""
    xp, oh, ow, _, _ = _pool_pad(x, window, stride)
    out, arg = None, None
    for i, j, t in _pool_windows(xp, window, stride, oh, ow):
        if out is None:
            out, arg = t, jnp.zeros(t.shape, _ARG_DTYPE)
        else:
            better = t > out  # strict: ties keep the earlier tap
            arg = jnp.where(better, jnp.asarray(i * window + j, _ARG_DTYPE), arg)
            out = jnp.maximum(out, t)
    return out, arg


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool_fast(x: jax.Array, window: int, stride: int) -> jax.Array:
    xp, oh, ow, _, _ = _pool_pad(x, window, stride)
    out = None
    for _, _, t in _pool_windows(xp, window, stride, oh, ow):
        out = t if out is None else jnp.maximum(out, t)
    return out


def _materialize(arg: jax.Array) -> jax.Array:
    """Return the argmax unchanged, but through a conditional, a fusion boundary for XLA:CPU.

    Without it XLA fuses the argmax computation into each window tap of the backward pass and
    recomputes it window*window times (15x slower; ``lax.optimization_barrier`` does not stop
    this on CPU). The predicate always holds (taps are >= 0); XLA cannot prove it, so the
    conditional survives and its operand is materialised once.
    """
    return jax.lax.cond(arg[(0,) * arg.ndim] >= 0, lambda a: a, lambda a: a - 1, arg)


def _max_pool_fast_fwd(x, window, stride):
    out, arg = _max_pool_with_argmax(x, window, stride)
    return out, (_materialize(arg), x.shape)


def _max_pool_fast_bwd(window, stride, res, g):
    # The gradient goes to the first maximum of each window in row-major order: the semantics
    # of XLA's select-and-scatter with a >= select (JAX's and TF's max-pool gradient). Only the
    # int8 argmax is kept from the forward pass, so nothing is recomputed here.
    arg, (b, h, w, c) = res
    oh, ph0, ph1 = _pool_padding(h, window, stride)
    ow, pw0, pw1 = _pool_padding(w, window, stride)
    hp, wp = h + ph0 + ph1, w + pw0 + pw1
    zero = jnp.zeros((), g.dtype)
    grad = None
    for i in range(window):
        for j in range(window):
            contrib = jax.lax.pad(
                jnp.where(arg == i * window + j, g, zero),
                zero,
                (
                    (0, 0, 0),
                    (i, hp - i - stride * (oh - 1) - 1, stride - 1),
                    (j, wp - j - stride * (ow - 1) - 1, stride - 1),
                    (0, 0, 0),
                ),
            )
            grad = contrib if grad is None else grad + contrib
    return (grad[:, ph0 : ph0 + h, pw0 : pw0 + w, :],)


_max_pool_fast.defvjp(_max_pool_fast_fwd, _max_pool_fast_bwd)


def _max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Max-pool, SAME padding with -inf (padded positions never win, as in TF)."""
    return _max_pool_jit(x, window, stride, _KERNELS)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _max_pool_jit(x: jax.Array, window: int, stride: int, kernels: str) -> jax.Array:
    # Jitted for the same reason as _conv_bn_relu_math: traced once per shape.
    if kernels == "fast":
        return _max_pool_fast(x, window, stride)
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding="SAME")


def _conv_bn_relu(layer: ConvBnRelu, x: jax.Array, kernel: jax.Array, train: bool) -> jax.Array:
    """Conv, then BN (TF1 fused semantics), then ReLU; variables live in the conv layer's scope.

    Written with few primitives: tracing cost matters (a paper-config network has ~70 layers).
    """
    c = kernel.shape[-1]
    f32 = jnp.float32
    # Deterministic initialisers need no PRNG key: declaring them as variables of the 'params'
    # collection skips flax's per-parameter key derivation (a third of the tracing time).
    scale = layer.variable("params", "scale", jnp.ones, (c,), f32).value
    bias = layer.variable("params", "bias", jnp.zeros, (c,), f32).value
    ra_mean = layer.variable("batch_stats", "mean", jnp.zeros, (c,), f32)
    ra_var = layer.variable("batch_stats", "var", jnp.ones, (c,), f32)
    static = dict(momentum=layer.bn_momentum, eps=layer.bn_epsilon,
                  out_dtype=jnp.dtype(layer.dtype), kernels=_KERNELS)
    if train and not layer.is_initializing():
        out, ra_mean.value, ra_var.value = _conv_bn_relu_math(
            x, kernel, scale, bias, ra_mean.value, ra_var.value, train=True, **static)
    else:
        out = _conv_bn_relu_math(x, kernel, scale, bias, ra_mean.value, ra_var.value,
                                 train=train, **static)[0]
    return out


@functools.partial(jax.jit, static_argnames=("momentum", "eps", "train", "out_dtype", "kernels"))
def _conv_bn_relu_math(x, kernel, scale, bias, ra_mean, ra_var, *, momentum, eps, train,
                       out_dtype, kernels):
    """The conv-BN-ReLU arithmetic: ``(output, new moving mean, new moving variance)``.

    A jitted function, so a network traces (and the gradient linearizes) it once per distinct
    shape and reuses it for every layer of that shape: the ~70 layers of a paper-config network
    share a few shapes. That cut the train step's trace + lower time from ~1.2 s to ~0.7 s.
    XLA inlines the calls (same kernels, same speed). ``kernels``: the ``_KERNELS`` in force.
    """
    if kernel.dtype != out_dtype:
        kernel = kernel.astype(out_dtype)
    y = _conv(x, kernel, kernels)
    f32 = jnp.float32
    yf = y if y.dtype == f32 else y.astype(f32)
    if train:
        axes = tuple(range(y.ndim - 1))
        n = math.prod(y.shape[:-1])
        # One pass (E[y], E[y^2]) in float32: XLA fuses both reductions into one sweep.
        mean = jnp.sum(yf, axes) / n
        var = jnp.maximum(jnp.sum(yf * yf, axes) / n - mean * mean, 0.0)
        m = momentum
        # TF1's fused batch norm feeds the unbiased variance to the moving average.
        new_mean = m * ra_mean + (1.0 - m) * mean
        new_var = m * ra_var + ((1.0 - m) * n / max(n - 1, 1)) * var
    else:
        mean, var = ra_mean, ra_var
        new_mean, new_var = ra_mean, ra_var
    mul = scale * jax.lax.rsqrt(var + eps)
    out = yf * mul + (bias - mean * mul)
    # ReLU as a select: gradient 0 at 0 (TF's ReluGrad), cheaper to trace than jax.nn.relu.
    out = jnp.where(out > 0, out, 0.0)
    return (out if out.dtype == out_dtype else out.astype(out_dtype)), new_mean, new_var


# ------------------------------------------------------------------------------------------
# Cell and network
# ------------------------------------------------------------------------------------------
def _validate_cell(matrix: Any, ops: Sequence[str]) -> None:
    """Raise unless (matrix, ops) is a pruned cell of the space (checked before tracing)."""
    m = _as_cell_matrix(matrix)
    if isinstance(ops, str) or len(ops) != m.shape[0]:
        raise SpecError(f"ops must be {m.shape[0]} labels, got {ops!r}")
    spec = ModelSpec(m, list(ops))
    check_spec(spec)
    if spec.matrix.shape != m.shape:
        raise SpecError(
            "the cell is not pruned (some vertex is not on an input->output path); "
            "pass ModelSpec(...).matrix and .ops"
        )


class Cell(nn.Module):
    """One module: a pruned cell instantiated with ``out_channels`` outputs (spec §5.2).

    Attributes:
      matrix: pruned adjacency as nested tuples (hashable). ops: pruned labels.
      out_channels: ``C_out``. bn_momentum, bn_epsilon, dtype: as :class:`Network`.

    Submodules: ``vertex{j}`` (conv vertices), ``input_projection{j}`` (input -> vertex ``j``),
    ``output_projection`` (input -> output, or the whole cell when ``V == 2``).
    """

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    out_channels: int
    bn_momentum: float = 0.997
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32

    def _layer(self, features: int, kernel_size: int, name: str) -> ConvBnRelu:
        return ConvBnRelu(
            features, kernel_size, self.bn_momentum, self.bn_epsilon, self.dtype, name=name
        )

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """``x: [B, H, W, C_in]`` -> ``[B, H, W, out_channels]``."""
        m = self.matrix
        v = len(m)
        vc = compute_vertex_channels(x.shape[-1], self.out_channels, m)
        if v == 2:
            return self._layer(self.out_channels, 1, "output_projection")(x, train=train)
        t: list[jax.Array | None] = [x] + [None] * (v - 1)
        for j in range(1, v - 1):
            addends = [t[i][..., : vc[j]] for i in range(1, j) if m[i][j]]
            if m[0][j]:
                addends.append(self._layer(vc[j], 1, f"input_projection{j}")(x, train=train))
            h = addends[0]
            for a in addends[1:]:
                h = h + a
            op = self.ops[j]
            if op == C.MAXPOOL3X3:
                t[j] = _max_pool(h, 3, 1)
            else:
                t[j] = self._layer(vc[j], _op_kernel_size(op), f"vertex{j}")(h, train=train)
        outs = [t[j] for j in range(1, v - 1) if m[j][v - 1]]
        out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
        if m[0][v - 1]:
            out = out + self._layer(self.out_channels, 1, "output_projection")(x, train=train)
        return out


class Stack(nn.Module):
    """``num_modules`` copies of a cell, after a max-pool 2x2/2 when ``downsample`` (§5.1).

    Submodules ``module{m}``; ``out_channels`` is the stack's (already doubled) channel count.
    """

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    out_channels: int
    num_modules: int
    downsample: bool
    bn_momentum: float = 0.997
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """``x: [B, H, W, C]`` -> ``[B, H', W', out_channels]`` (``H' = ceil(H/2)`` if downsampling)."""
        if self.downsample:
            x = _max_pool(x, 2, 2)
        for mod in range(self.num_modules):
            x = Cell(
                self.matrix,
                self.ops,
                self.out_channels,
                self.bn_momentum,
                self.bn_epsilon,
                self.dtype,
                name=f"module{mod}",
            )(x, train=train)
        return x


class Network(nn.Module):
    """The NAS-Bench-101 network of one cell (reference spec §5.1).

    Prefer :func:`build_network`, which validates a ``ModelSpec`` and a config first.

    Attributes:
      matrix: the *pruned* adjacency as nested tuples of 0/1 ints (hashable, static).
      ops: the pruned labels, ``('input', ..., 'output')``.
      stem_filter_size: channels of the stem and the first stack (128 in the paper).
      num_stacks, num_modules_per_stack: 3 and 3 in the paper.
      num_labels: classes of the dense head.
      bn_momentum, bn_epsilon: 0.997 and 1e-5.
      dtype: compute dtype of activations (``jnp.float32`` or ``jnp.bfloat16``, or its name);
        parameters, BN statistics and logits are float32.

    Call: ``images: float[B, H, W, 3]``, keyword ``train: bool`` -> logits ``float32[B,
    num_labels]``. Variables: ``{'params', 'batch_stats'}``; ``train=True`` needs
    ``mutable=['batch_stats']`` and uses per-call batch statistics (no ``axis_name``).

    Raises (at construction): SpecError / OutOfDomainError for a cell outside the space or not
    pruned; ConfigError for non-positive sizes, momentum outside [0, 1), epsilon <= 0, an
    unknown dtype.
    """

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    stem_filter_size: int = 128
    num_stacks: int = 3
    num_modules_per_stack: int = 3
    num_labels: int = 10
    bn_momentum: float = 0.997
    bn_epsilon: float = 1e-5
    dtype: Any = jnp.float32

    def __post_init__(self):
        _validate_cell(self.matrix, self.ops)
        _validate_sizes(
            self.stem_filter_size,
            self.num_stacks,
            self.num_modules_per_stack,
            self.num_labels,
            self.bn_momentum,
            self.bn_epsilon,
            self.matrix,
        )
        _compute_dtype(self.dtype)
        super().__post_init__()

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
        """Logits ``float32[B, num_labels]`` of ``images: float[B, H, W, C]``."""
        if not hasattr(images, "shape") or len(images.shape) != 4:
            raise ModelInputError(
                f"images must be a [batch, height, width, channels] array, got "
                f"shape {getattr(images, 'shape', type(images).__name__)}"
            )
        if not jnp.issubdtype(images.dtype, jnp.floating):
            raise ModelInputError(f"images must be floating point, got dtype {images.dtype}")
        if not isinstance(train, (bool, np.bool_)):
            raise ModelInputError(f"train must be a Python bool, got {type(train).__name__}")
        dtype = _compute_dtype(self.dtype)
        bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=dtype)
        x = images.astype(dtype)
        x = ConvBnRelu(self.stem_filter_size, 3, name="stem", **bn)(x, train=train)
        matrix = tuple(tuple(int(a) for a in row) for row in self.matrix)
        ops = tuple(self.ops)
        channels = self.stem_filter_size
        for s in range(self.num_stacks):
            if s > 0:
                channels *= 2
            x = Stack(
                matrix, ops, channels, self.num_modules_per_stack, s > 0, name=f"stack{s}", **bn
            )(x, train=train)
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        return nn.Dense(
            self.num_labels,
            kernel_init=dense_kernel_init,
            bias_init=nn.initializers.zeros,
            dtype=jnp.float32,
            name="dense",
        )(x)


def _compute_dtype(dtype: Any) -> Any:
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        return _DTYPES[dtype]
    try:
        name = jnp.dtype(dtype).name
    except TypeError:
        raise ConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}") from None
    if name not in _DTYPES:
        raise ConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def _validate_sizes(stem, stacks, per_stack, labels, momentum, epsilon, matrix) -> None:
    stem = _check_channels("stem_filter_size", stem)
    _check_channels("num_stacks", stacks)
    _check_channels("num_modules_per_stack", per_stack)
    _check_channels("num_labels", labels)
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)) or not (
        0.0 <= float(momentum) < 1.0
    ):
        raise ConfigError(f"batch_norm_momentum must be a number in [0, 1), got {momentum!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not (
        float(epsilon) > 0.0 and math.isfinite(float(epsilon))
    ):
        raise ConfigError(f"batch_norm_epsilon must be a positive number, got {epsilon!r}")
    m = np.asarray(matrix)
    feeds_out = int(m[1:-1, -1].sum()) if m.shape[0] > 2 else 1
    if stem < feeds_out:
        raise ConfigError(
            f"stem_filter_size={stem} is smaller than the {feeds_out} cell vertices feeding the "
            "output; each needs at least one channel"
        )


def build_network(spec: ModelSpec, config: Any) -> Network:
    """Validate a cell and a config, then build its :class:`Network` (nothing is traced).

    Args:
      spec: a ``ModelSpec`` in the space; its pruned matrix and ops are used.
      config: an ``ml_collections.ConfigDict`` (or any object/mapping) with ``stem_filter_size``,
        ``num_stacks``, ``num_modules_per_stack``, ``num_labels`` and optionally
        ``batch_norm_momentum`` (0.997), ``batch_norm_epsilon`` (1e-5), ``dtype``
        (``'float32'``; or ``'bfloat16'``).

    Returns:
      An unbound ``Network``; call ``init``/``apply`` on it.

    Raises:
      OutOfDomainError: the spec is invalid or outside the space (``check_spec``'s message).
      ModelTypeError: ``spec`` is not a ``ModelSpec``.
      ConfigError: a required field is missing, or a value cannot be built (names the field).
    """
    _check_spec(spec)

    def field(name: str, default: Any = _REQUIRED) -> Any:
        if isinstance(config, Mapping):
            value = config.get(name, default)
        else:
            value = getattr(config, name, default)
        if value is _REQUIRED:
            raise ConfigError(f"config has no field {name!r}")
        return value

    matrix = tuple(tuple(int(a) for a in row) for row in spec.matrix)
    ops = tuple(spec.ops)
    kwargs = dict(
        stem_filter_size=field("stem_filter_size"),
        num_stacks=field("num_stacks"),
        num_modules_per_stack=field("num_modules_per_stack"),
        num_labels=field("num_labels"),
        bn_momentum=field("batch_norm_momentum", 0.997),
        bn_epsilon=field("batch_norm_epsilon", 1e-5),
    )
    _validate_sizes(*kwargs.values(), matrix)
    dtype = _compute_dtype(field("dtype", "float32"))
    return Network(matrix=matrix, ops=ops, dtype=dtype, **kwargs)


_REQUIRED = object()
