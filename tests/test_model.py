"""Tests of nasbench_jax.model: channel rule, parameter counts, network semantics, errors.

Expectations come from the reference spec (§5.3's table, §5.6/§5.7's counts), the real records in
../shared/data, hand computations and an independent NumPy implementation of the network written
from the spec text (``_np_network`` below).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cpu_tiny, nasbench101
from nasbench_jax import ModelSpec, OutOfDomainError, is_valid, space
from nasbench_jax.errors import ConfigError, NASBenchError, SpecError
from nasbench_jax.model import (
    Cell,
    ConvBnRelu,
    ModelInputError,
    ModelTypeError,
    Network,
    build_network,
    cell_parameters,
    compute_vertex_channels,
    count_params,
    network_channels,
    trainable_parameters,
)

OPS = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]

INCEPTION_README = ModelSpec(
    [
        [0, 1, 1, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    ["input", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu",
     "maxpool3x3", "output"],
)
INCEPTION_CANONICAL = ModelSpec(
    [
        [0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu",
     "conv3x3-bn-relu", "output"],
)
IN_OUT = ModelSpec([[0, 1], [0, 0]], ["input", "output"])


def _rows(s: str) -> list[list[int]]:
    return [[int(c) for c in row] for row in s.split("/")]


def random_cells(rng: np.random.Generator, num_vertices: int, n: int) -> list[ModelSpec]:
    """Up to ``n`` distinct valid pruned cells with exactly ``num_vertices`` vertices.

    Rejection sampling of random upper-triangular matrices and ops; small vertex counts have
    fewer than ``n`` cells (1 for V=2, 6 for V=3) and then all of them are returned.
    """
    out, seen = [], set()
    for _ in range(50_000):
        if len(out) == n:
            break
        v = num_vertices
        # A random edge density per draw: dense 7-vertex matrices rarely have <= 9 edges.
        m = np.triu(rng.random((v, v)) < rng.uniform(0.2, 0.7), 1).astype(int)
        ops = ["input"] + [OPS[i] for i in rng.integers(0, 3, v - 2)] + ["output"]
        s = ModelSpec(m, ops)
        if not is_valid(s) or s.num_vertices != v:
            continue
        key = (s.matrix.tobytes(), tuple(s.ops))
        if key not in seen:
            seen.add(key)
            out.append(ModelSpec(s.matrix, s.ops))
    return out


# ------------------------------------------------------------------------------------------
# compute_vertex_channels: every case of the reference spec's §5.3 table
# ------------------------------------------------------------------------------------------
VC_TABLE = [
    ("0100/0010/0001/0000", [((8, 8), [8, 8, 8, 8]), ((8, 16), [8, 16, 16, 16]),
                             ((16, 8), [16, 8, 8, 8])]),
    ("01/00", [((1, 1), [1, 1]), ((1, 5), [1, 5]), ((5, 1), [5, 1])]),
    ("01100/00010/00010/00001/00000", [((8, 8), [8, 8, 8, 8, 8]), ((8, 16), [8, 16, 16, 16, 16]),
                                       ((16, 8), [16, 8, 8, 8, 8])]),
    ("0110/0001/0001/0000", [((8, 8), [8, 4, 4, 8]), ((8, 16), [8, 8, 8, 16]),
                             ((16, 8), [16, 4, 4, 8]), ((8, 15), [8, 8, 7, 15])]),
    ("01110/00001/00001/00001/00000", [((8, 8), [8, 3, 3, 2, 8]), ((8, 15), [8, 5, 5, 5, 15])]),
    ("01000/00110/00001/00001/00000", [((8, 8), [8, 4, 4, 4, 8]), ((8, 9), [8, 5, 5, 4, 9])]),
    ("01010/00101/00010/00001/00000", [((8, 8), [8, 4, 4, 4, 8]), ((8, 15), [8, 8, 7, 7, 15])]),
]


@pytest.mark.parametrize(
    "matrix,cin,cout,expected",
    [(m, cin, cout, vc) for m, cases in VC_TABLE for (cin, cout), vc in cases],
)
def test_compute_vertex_channels_table(matrix, cin, cout, expected):
    assert compute_vertex_channels(cin, cout, _rows(matrix)) == expected


def test_compute_vertex_channels_readme_cell_breakdown():
    # §5.7's breakdown table: vertex 3 takes vertex 4's count, four outputs share C_out.
    m = INCEPTION_README.matrix
    assert compute_vertex_channels(128, 128, m) == [128, 32, 32, 32, 32, 32, 128]
    assert compute_vertex_channels(256, 512, m) == [256, 128, 128, 128, 128, 128, 512]


def test_compute_vertex_channels_errors():
    with pytest.raises(ConfigError, match="out_channels"):
        compute_vertex_channels(8, 2, _rows("01110/00001/00001/00001/00000"))
    with pytest.raises(ConfigError, match="in_channels"):
        compute_vertex_channels(0, 8, _rows("01/00"))
    with pytest.raises(SpecError, match="not pruned|no channels"):  # vertex 2 is a dead end
        compute_vertex_channels(8, 8, _rows("0110/0001/0000/0000"))
    with pytest.raises(SpecError, match="upper triangular"):
        compute_vertex_channels(8, 8, _rows("00/10"))
    with pytest.raises(SpecError, match="square"):
        compute_vertex_channels(8, 8, [[0, 1, 0], [0, 0, 1]])


# ------------------------------------------------------------------------------------------
# Closed-form parameter counts against the original's numbers
# ------------------------------------------------------------------------------------------
def test_trainable_parameters_known_cells():
    assert trainable_parameters(INCEPTION_README) == 2_694_282
    assert trainable_parameters(INCEPTION_CANONICAL) == 2_694_282
    assert trainable_parameters(IN_OUT) == 882_570
    resnet_like = ModelSpec(_rows("0101/0010/0001/0000"),
                            ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"])
    assert trainable_parameters(resnet_like) == 20_346_506  # §5.7 (derived)


def test_cell_parameters_breakdown_matches_spec_table():
    # Reference spec §5.7's per-module breakdown of the README cell.
    m, ops = INCEPTION_README.matrix, INCEPTION_README.ops
    expected = {(128, 128): 45_568, (128, 256): 148_480, (256, 256): 181_248,
                (256, 512): 591_872, (512, 512): 722_944}
    for (cin, cout), n in expected.items():
        assert cell_parameters(cin, cout, m, ops) == n
    assert network_channels(128, 3, 3) == [
        (128, 128), (128, 128), (128, 128), (128, 256), (256, 256), (256, 256),
        (256, 512), (512, 512), (512, 512)]


def test_trainable_parameters_all_real_records(sample_1k, full_records_52):
    n = 0
    for r in sample_1k:
        nv = sum(1 for o in r["operations"] if o != -3)
        spec = space.decode(np.array(r["adjacency"]), np.array(r["operations"]), nv)
        assert trainable_parameters(spec) == r["trainable_parameters"], r["hash"]
        n += 1
    for r in full_records_52:
        f = r["fixed"]
        spec = ModelSpec(f["module_adjacency"], f["module_operations"])
        assert trainable_parameters(spec) == f["trainable_parameters"], r["hash"]
        n += 1
    assert n == 1_052


def test_trainable_parameters_errors():
    with pytest.raises(OutOfDomainError, match="disconnected"):
        trainable_parameters(ModelSpec(_rows("010/000/000"), ["input", "conv1x1-bn-relu", "output"]))
    with pytest.raises(OutOfDomainError, match="unsupported op"):
        trainable_parameters(ModelSpec(_rows("010/001/000"), ["input", "conv5x5", "output"]))
    with pytest.raises(ModelTypeError):
        trainable_parameters(_rows("01/00"))
    with pytest.raises(ConfigError, match="stem_filter_size"):
        trainable_parameters(IN_OUT, stem_filter_size=0)
    with pytest.raises(ConfigError, match="num_stacks"):
        trainable_parameters(IN_OUT, num_stacks=0)


# ------------------------------------------------------------------------------------------
# The Flax model's own parameter count equals the closed form
# ------------------------------------------------------------------------------------------
def _flax_count(net: Network) -> int:
    images = jax.ShapeDtypeStruct((1, 4, 4, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=False), images)
    return count_params(shapes)


def test_flax_count_equals_closed_form_paper_config():
    # The reduced config (cpu_tiny: 8 channels, 1 stack, 1 module) is checked on 207 cells by
    # test_random_cells_forward_backward_tiny, which builds and runs them anyway.
    config = nasbench101.get_config()
    rng = np.random.default_rng(3)
    checked = {}
    for v in range(2, 8):
        cells = random_cells(rng, v, 50)
        assert len(cells) == {2: 1, 3: 6}.get(v, 50)  # V=2 and V=3 have only 1 and 6 cells
        for spec in cells:
            assert _flax_count(build_network(spec, config)) == trainable_parameters(spec)
        checked[v] = len(cells)
    assert sum(checked.values()) == 207


def test_parameter_tree_structure_and_initialisers():
    net = build_network(INCEPTION_README, nasbench101.get_config())
    shapes = jax.eval_shape(
        lambda: net.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)), train=False))
    p, bs = shapes["params"], shapes["batch_stats"]
    assert set(p) == {"stem", "stack0", "stack1", "stack2", "dense"}
    assert set(p["stack1"]) == {"module0", "module1", "module2"}
    # README cell: vertices 1-4 are convs (5 is the max-pool), input feeds 1, 2, 3 and 5.
    assert set(p["stack0"]["module0"]) == {
        "vertex1", "vertex2", "vertex3", "vertex4",
        "input_projection1", "input_projection2", "input_projection3", "input_projection5"}
    assert p["stack1"]["module0"]["vertex4"]["kernel"].shape == (3, 3, 64, 64)
    assert p["stack1"]["module0"]["input_projection1"]["kernel"].shape == (1, 1, 128, 64)
    assert p["stack2"]["module1"]["vertex1"]["kernel"].shape == (1, 1, 128, 128)
    assert p["dense"]["kernel"].shape == (512, 10) and p["dense"]["bias"].shape == (10,)
    assert bs["stem"]["mean"].shape == (128,) and "kernel" not in bs["stem"]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(shapes))


def test_initialiser_distributions():
    # Large-ish layers so the moments are sharp: stem 3x3x3x64, dense 64->256.
    net = Network(IN_OUT.matrix, IN_OUT.ops, stem_filter_size=64, num_stacks=1,
                  num_modules_per_stack=1, num_labels=256)
    v = net.init(jax.random.key(1), jnp.zeros((1, 4, 4, 3)), train=False)
    k = np.asarray(v["params"]["stem"]["kernel"])
    sigma = math.sqrt(1.0 / 27)  # variance_scaling(1, fan_in): Var = 1 / fan_in after truncation
    assert abs(k.std() / sigma - 1) < 0.08
    assert np.abs(k).max() <= 2 * sigma / 0.87962566103423978 + 1e-6  # truncated at 2 std
    d = np.asarray(v["params"]["dense"]["kernel"])
    limit = math.sqrt(6.0 / (64 + 256))  # Glorot uniform
    assert np.abs(d).max() <= limit and np.abs(d).max() > 0.95 * limit
    assert abs(d.std() / (limit / math.sqrt(3)) - 1) < 0.05
    np.testing.assert_array_equal(v["params"]["dense"]["bias"], 0)
    np.testing.assert_array_equal(v["params"]["stem"]["scale"], 1)
    np.testing.assert_array_equal(v["params"]["stem"]["bias"], 0)
    np.testing.assert_array_equal(v["batch_stats"]["stem"]["mean"], 0)
    np.testing.assert_array_equal(v["batch_stats"]["stem"]["var"], 1)


# ------------------------------------------------------------------------------------------
# Batch norm: train mode uses batch statistics and updates the moving averages; eval uses them
# ------------------------------------------------------------------------------------------
def test_batch_norm_train_and_eval_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 2, 2)).astype(np.float32) * 2 + 1
    layer = ConvBnRelu(features=3, kernel_size=1)
    v = layer.init(jax.random.key(0), jnp.asarray(x), train=False)
    kernel = rng.normal(size=(1, 1, 2, 3)).astype(np.float32)
    scale = np.array([1.0, 2.0, 0.5], np.float32)
    bias = np.array([0.1, -0.2, 0.3], np.float32)
    mean0 = np.array([0.5, -1.0, 2.0], np.float32)
    var0 = np.array([1.5, 0.5, 3.0], np.float32)
    variables = {"params": {"kernel": kernel, "scale": scale, "bias": bias},
                 "batch_stats": {"mean": mean0, "var": var0}}

    y = x.reshape(-1, 2) @ kernel[0, 0]  # 12 samples x 3 channels
    # Train: normalise with the biased batch variance; moving var gets the unbiased one (TF1
    # fused batch norm); moving <- 0.997 moving + 0.003 batch.
    mu = y.mean(0)
    var_b = ((y - mu) ** 2).mean(0)
    expected_train = np.maximum((y - mu) / np.sqrt(var_b + 1e-5) * scale + bias, 0)
    out, upd = layer.apply(variables, jnp.asarray(x), train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(out).reshape(-1, 3), expected_train, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.997 * mean0 + 0.003 * mu, rtol=1e-5)
    unbiased = ((y - mu) ** 2).sum(0) / (y.shape[0] - 1)
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.997 * var0 + 0.003 * unbiased, rtol=1e-5)
    # Eval: the moving averages, untouched.
    expected_eval = np.maximum((y - mean0) / np.sqrt(var0 + 1e-5) * scale + bias, 0)
    out_eval = layer.apply(variables, jnp.asarray(x), train=False)
    np.testing.assert_allclose(np.asarray(out_eval).reshape(-1, 3), expected_eval, rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="batch_stats"):  # eval never writes statistics
        layer.apply(variables, jnp.asarray(x), train=True)  # train needs mutable batch_stats


# ------------------------------------------------------------------------------------------
# An independent NumPy network, written from the spec text (§5.1, §5.2, §5.4, §5.5)
# ------------------------------------------------------------------------------------------
def _np_conv(x, k):
    kh = k.shape[0]
    p = kh // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (k.shape[-1],), np.float64)
    for di in range(kh):
        for dj in range(kh):
            out += xp[:, di:di + h, dj:dj + w, :] @ k[di, dj]
    return out


def _np_cbr(x, layer, stats, train):
    y = _np_conv(x, np.asarray(layer["kernel"], np.float64))
    if train:
        mu, var = y.mean((0, 1, 2)), y.var((0, 1, 2))
    else:
        mu, var = np.asarray(stats["mean"]), np.asarray(stats["var"])
    y = (y - mu) / np.sqrt(var + 1e-5) * np.asarray(layer["scale"]) + np.asarray(layer["bias"])
    return np.maximum(y, 0)


def _np_maxpool(x, win, stride):
    b, h, w, c = x.shape
    oh, ow = -(-h // stride), -(-w // stride)
    ph = max((oh - 1) * stride + win - h, 0)
    pw = max((ow - 1) * stride + win - w, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)),
                constant_values=-np.inf)
    out = np.full((b, oh, ow, c), -np.inf)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = xp[:, i * stride:i * stride + win, j * stride:j * stride + win].max((1, 2))
    return out


def _np_cell(x, m, ops, cout, p, s, train):
    v = len(m)
    vc = compute_vertex_channels(x.shape[-1], cout, m)
    if v == 2:
        return _np_cbr(x, p["output_projection"], s["output_projection"], train)
    t = {0: x}
    for j in range(1, v - 1):
        parts = [t[i][..., :vc[j]] for i in range(1, j) if m[i][j]]
        if m[0][j]:
            name = f"input_projection{j}"
            parts.append(_np_cbr(x, p[name], s[name], train))
        h = sum(parts[1:], parts[0])
        if ops[j] == "maxpool3x3":
            t[j] = _np_maxpool(h, 3, 1)
        else:
            t[j] = _np_cbr(h, p[f"vertex{j}"], s[f"vertex{j}"], train)
    out = np.concatenate([t[j] for j in range(1, v - 1) if m[j][v - 1]], axis=-1)
    if m[0][v - 1]:
        out = out + _np_cbr(x, p["output_projection"], s["output_projection"], train)
    return out


def _np_network(images, spec, variables, stem, stacks, per_stack, train):
    p, s = variables["params"], variables["batch_stats"]
    x = _np_cbr(np.asarray(images, np.float64), p["stem"], s["stem"], train)
    c = stem
    for st in range(stacks):
        if st > 0:
            x = _np_maxpool(x, 2, 2)
            c *= 2
        for mod in range(per_stack):
            ps, ss = p[f"stack{st}"][f"module{mod}"], s[f"stack{st}"][f"module{mod}"]
            x = _np_cell(x, spec.matrix, spec.ops, c, ps, ss, train)
    x = x.mean((1, 2))
    return x @ np.asarray(p["dense"]["kernel"]) + np.asarray(p["dense"]["bias"])


def _randomised_stats(variables, key):
    """Non-trivial moving statistics so eval mode is a real test."""
    leaves, tree = jax.tree_util.tree_flatten(variables["batch_stats"])
    keys = jax.random.split(key, len(leaves))
    new = [jax.random.uniform(k, l.shape, minval=0.5, maxval=1.5) * (l + 0.2)
           for k, l in zip(keys, leaves)]
    return {"params": variables["params"],
            "batch_stats": jax.tree_util.tree_unflatten(tree, new)}


@pytest.mark.parametrize(
    "spec", [INCEPTION_README, IN_OUT,
             ModelSpec(_rows("01010/00101/00010/00001/00000"),
                       ["input", "maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu", "output"]),
             ModelSpec(_rows("0111/0011/0001/0000"),
                       ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])],
    ids=["readme", "in_out", "mixed5", "dense4"],
)
def test_network_matches_numpy_reference(spec):
    # 6 channels: uneven splits and truncations occur; stack 0 has C_in == C_out, stack 1 doubles.
    stem, stacks, per_stack = 6, 2, 1
    net = Network(spec.matrix, spec.ops, stem_filter_size=stem, num_stacks=stacks,
                  num_modules_per_stack=per_stack, num_labels=5)
    images = jax.random.normal(jax.random.key(2), (3, 6, 6, 3))
    v = _randomised_stats(net.init(jax.random.key(0), images, train=False), jax.random.key(9))
    for train in (False, True):
        if train:
            got, _ = net.apply(v, images, train=True, mutable=["batch_stats"])
        else:
            got = net.apply(v, images, train=False)
        want = _np_network(images, spec, v, stem, stacks, per_stack, train)
        assert got.shape == (3, 5) and got.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4)


def test_eval_mode_is_per_sample_and_train_mode_is_not():
    net = build_network(INCEPTION_README, cpu_tiny.get_config())
    images = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    v = net.init(jax.random.key(1), images, train=False)
    eval_all = net.apply(v, images, train=False)
    eval_one = net.apply(v, images[:1], train=False)
    np.testing.assert_allclose(eval_all[:1], eval_one, rtol=1e-5, atol=1e-6)
    train_all, upd = net.apply(v, images, train=True, mutable=["batch_stats"])
    train_two, _ = net.apply(v, images[:2], train=True, mutable=["batch_stats"])
    assert not np.allclose(train_all[:2], train_two, atol=1e-4)
    # The moving mean moved by exactly 0.3% of the batch statistic, starting from 0.
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), upd["batch_stats"],
                                     v["batch_stats"])
    assert all(jax.tree_util.tree_leaves(changed))


# ------------------------------------------------------------------------------------------
# 200 random cells build and run forward + backward at the tiny config
# ------------------------------------------------------------------------------------------
def test_random_cells_forward_backward_tiny():
    config = cpu_tiny.get_config()
    rng = np.random.default_rng(11)
    cells = [IN_OUT] + random_cells(rng, 3, 6)
    for v in range(4, 8):
        cells += random_cells(rng, v, 50)
    # >= 200 cells; every vertex count, >= 50 of each where the space has that many.
    assert len(cells) == 207 and {c.num_vertices for c in cells} == set(range(2, 8))
    images = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    labels = jnp.array([3, 7])
    for spec in cells:
        net = build_network(spec, config)
        variables = net.init(jax.random.key(1), images, train=False)

        def loss_fn(params, batch_stats):
            logits, upd = net.apply({"params": params, "batch_stats": batch_stats}, images,
                                    train=True, mutable=["batch_stats"])
            loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))
            return loss, (logits, upd)

        # Eager (op-by-op) execution: XLA caches each primitive by shape, so 200 cells cost far
        # less than 200 whole-network compilations on a CPU.
        (loss, (logits, upd)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            variables["params"], variables["batch_stats"])
        assert logits.shape == (2, 10) and logits.dtype == jnp.float32
        assert np.isfinite(float(loss))
        assert count_params(grads) == trainable_parameters(
            spec, stem_filter_size=8, num_stacks=1, num_modules_per_stack=1)
        assert jax.tree_util.tree_structure(upd["batch_stats"]) == jax.tree_util.tree_structure(
            variables["batch_stats"])
        g = jax.tree_util.tree_leaves(grads)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in g)
        assert float(jnp.abs(grads["dense"]["kernel"]).sum()) > 0


def test_bfloat16_compute_dtype():
    config = cpu_tiny.get_config()
    config.dtype = "bfloat16"
    net = build_network(INCEPTION_README, config)
    net32 = build_network(INCEPTION_README, cpu_tiny.get_config())
    images = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    v = net32.init(jax.random.key(1), images, train=False)
    v16 = net.init(jax.random.key(1), images, train=False)
    assert all(l.dtype == jnp.float32 for l in jax.tree_util.tree_leaves(v16))
    logits, upd = net.apply(v, images, train=True, mutable=["batch_stats"])
    ref, _ = net32.apply(v, images, train=True, mutable=["batch_stats"])
    assert logits.dtype == jnp.float32
    assert all(l.dtype == jnp.float32 for l in jax.tree_util.tree_leaves(upd))
    np.testing.assert_allclose(logits, ref, atol=0.1, rtol=0.1)


# ------------------------------------------------------------------------------------------
# Bad input: clear errors before any tracing
# ------------------------------------------------------------------------------------------
def test_build_network_rejects_bad_specs():
    cfg = nasbench101.get_config()
    with pytest.raises(OutOfDomainError, match="disconnected"):
        build_network(ModelSpec(_rows("010/000/000"), ["input", "conv1x1-bn-relu", "output"]), cfg)
    eight = np.triu(np.ones((8, 8), int), 1) * 0
    for i in range(7):
        eight[i, i + 1] = 1
    with pytest.raises(OutOfDomainError, match="too many vertices"):
        build_network(ModelSpec(eight, ["input"] + ["conv3x3-bn-relu"] * 6 + ["output"]), cfg)
    with pytest.raises(OutOfDomainError, match="too many edges"):
        build_network(ModelSpec(np.triu(np.ones((6, 6), int), 1), ["input"] + ["maxpool3x3"] * 4 + ["output"]), cfg)
    with pytest.raises(ModelTypeError, match="ModelSpec"):
        build_network({"matrix": [[0, 1], [0, 0]]}, cfg)


@pytest.mark.parametrize(
    "field,value,match",
    [("stem_filter_size", 0, "stem_filter_size"), ("stem_filter_size", 2.5, "stem_filter_size"),
     ("num_stacks", 0, "num_stacks"), ("num_modules_per_stack", -1, "num_modules_per_stack"),
     ("num_labels", 0, "num_labels"), ("batch_norm_momentum", 1.0, "batch_norm_momentum"),
     ("batch_norm_epsilon", 0.0, "batch_norm_epsilon"), ("dtype", "float64", "dtype"),
     ("dtype", "int8", "dtype"), ("stem_filter_size", 3, "stem_filter_size")],
)
def test_build_network_rejects_bad_configs(field, value, match):
    cfg = nasbench101.get_config().to_dict()  # a plain dict: ConfigDict would refuse 2.5
    cfg[field] = value
    # stem 3 < the README cell's 4 output-feeding vertices: some vertex would get 0 channels.
    with pytest.raises(ConfigError, match=match):
        build_network(INCEPTION_README, cfg)


def test_build_network_missing_field_and_network_fields():
    with pytest.raises(ConfigError, match="stem_filter_size"):
        build_network(IN_OUT, {"num_stacks": 1})
    net = build_network(IN_OUT, dict(stem_filter_size=4, num_stacks=1, num_modules_per_stack=1,
                                     num_labels=3))
    assert (net.stem_filter_size, net.num_labels, net.bn_momentum, net.bn_epsilon) == (4, 3, 0.997, 1e-5)
    # Network itself refuses unpruned or out-of-space cells at construction.
    with pytest.raises(SpecError, match="not pruned"):
        Network(((0, 1, 1), (0, 0, 0), (0, 0, 0)), ("input", "conv1x1-bn-relu", "output"))
    with pytest.raises(OutOfDomainError, match="unsupported op"):
        Network(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", "conv5x5", "output"))


def test_bad_images_error_clearly():
    net = build_network(IN_OUT, cpu_tiny.get_config())
    key = jax.random.key(0)
    with pytest.raises(ModelInputError, match="batch, height, width"):
        net.init(key, jnp.zeros((8, 8, 3)), train=False)
    with pytest.raises(ModelInputError, match="floating"):
        net.init(key, jnp.zeros((1, 8, 8, 3), jnp.int32), train=False)
    assert issubclass(ModelInputError, NASBenchError) and issubclass(ModelInputError, ValueError)


# ------------------------------------------------------------------------------------------
# The fast kernels equal the straightforward formulation (lax.conv, nn.max_pool)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,window,stride", [((2, 6, 5, 3), 3, 1), ((2, 6, 6, 4), 2, 2),
                                                 ((1, 5, 7, 2), 2, 2)])
def test_fast_max_pool_equals_reference_including_ties(monkeypatch, shape, window, stride):
    import nasbench_jax.model as model

    # Post-ReLU values rounded to halves: many ties inside windows (and all-zero windows).
    x = jnp.maximum(jnp.round(jax.random.normal(jax.random.key(0), shape) * 2) / 2, 0)

    def run(kind):
        monkeypatch.setattr(model, "_KERNELS", kind)
        y, vjp = jax.vjp(lambda x: model._max_pool(x, window, stride), x)
        return y, vjp(jnp.arange(y.size, dtype=y.dtype).reshape(y.shape) + 1)[0]

    y_fast, g_fast = run("fast")
    y_ref, g_ref = run("reference")
    np.testing.assert_array_equal(y_fast, y_ref)
    np.testing.assert_array_equal(g_fast, g_ref)  # same winner per window, ties included
    # Hand-checked: with all-equal windows the first (top-left) tap takes the whole gradient.
    monkeypatch.setattr(model, "_KERNELS", "fast")
    ones = jnp.ones((1, 2, 2, 1))
    _, vjp = jax.vjp(lambda x: model._max_pool(x, 2, 2), ones)
    np.testing.assert_array_equal(vjp(jnp.full((1, 1, 1, 1), 5.0))[0][0, :, :, 0], [[5, 0], [0, 0]])


def test_fast_network_equals_reference_network(monkeypatch):
    import nasbench_jax.model as model

    net = Network(INCEPTION_README.matrix, INCEPTION_README.ops, stem_filter_size=8,
                  num_stacks=2, num_modules_per_stack=1, num_labels=10)
    images = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    labels = jnp.array([1, 2, 3, 4])
    variables = net.init(jax.random.key(1), images, train=False)

    def loss_and_grads(kind):
        monkeypatch.setattr(model, "_KERNELS", kind)

        def loss_fn(p):
            logits, upd = net.apply({"params": p, "batch_stats": variables["batch_stats"]},
                                    images, train=True, mutable=["batch_stats"])
            lp = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(lp, labels[:, None], 1)), upd

        return jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])

    (l_fast, upd_fast), g_fast = loss_and_grads("fast")
    (l_ref, upd_ref), g_ref = loss_and_grads("reference")
    np.testing.assert_allclose(l_fast, l_ref, rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
                           (g_fast, upd_fast), (g_ref, upd_ref))
