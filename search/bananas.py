"""A BANANAS-style model-based search: an ensemble of small MLPs as the surrogate.

After ``num_init`` uniformly drawn valid cells, every ``batch_size`` evaluations the method

1. trains an ensemble of ``ensemble_size`` MLPs (``36 -> hidden -> hidden -> 1``, ReLU, Adam via
   optax, ``train_steps`` full-batch steps, inside ``jit``) to predict the queried validation
   accuracy from the adjacency encoding (21 edge bits + 5 one-hot ops = 36 features; the
   "adjacency encoding" of BANANAS, White et al. 2021) of the evaluated cells;
2. proposes ``num_candidates`` candidates by mutating (the paper's RE mutation, one to three
   times) the best evaluated cells, drops invalid ones, and
3. queues the ``batch_size`` candidates with the highest upper confidence bound
   ``mean + ucb_beta * std`` over the ensemble for evaluation.

To keep shapes static the training set is the best ``history_size`` evaluations seen so far
(a new result replaces the worst one once the buffer is full). This is one model-based method
of the family the paper discusses (SMAC, TPE, BO); it is not part of the paper's Fig. 7.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from nasbench_jax import constants as C
from nasbench_jax.errors import ConfigError
from search import common
from search.evolution import mutate

__all__ = ["BananasConfig", "ALGORITHM", "bananas", "encode"]

_FEATURES = common.NUM_EDGE_VARS + common.NUM_OP_VARS * C.NUM_OPS  # 36


@dataclasses.dataclass(frozen=True)
class BananasConfig:
    """Attributes: see the module docstring."""

    num_init: int = 10
    batch_size: int = 10
    num_candidates: int = 100
    ensemble_size: int = 3
    hidden: int = 32
    train_steps: int = 60
    learning_rate: float = 0.01
    ucb_beta: float = 0.5
    history_size: int = 128
    candidates_per_step: int = 16

    def validate(self) -> None:
        for name in ("num_init", "batch_size", "num_candidates", "ensemble_size", "hidden",
                     "train_steps", "history_size", "candidates_per_step"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.num_candidates:
            raise ConfigError("batch_size must not exceed num_candidates")
        if not float(self.learning_rate) > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")


def encode(adjacency, operations):
    """Adjacency encoding ``float32[..., 36]`` of raw cells."""
    bits, ops = common.cells_to_bits(adjacency, operations)
    onehot = jax.nn.one_hot(ops, C.NUM_OPS).reshape(ops.shape[:-1] + (-1,))
    return jnp.concatenate([bits.astype(jnp.float32), onehot], -1)


def _mlp_init(key, hidden):
    k1, k2, k3 = jax.random.split(key, 3)
    g = jax.nn.initializers.glorot_normal()
    return dict(w1=g(k1, (_FEATURES, hidden)), b1=jnp.zeros(hidden), w2=g(k2, (hidden, hidden)),
                b2=jnp.zeros(hidden), w3=g(k3, (hidden, 1)), b3=jnp.zeros(1))


def _mlp(p, x):
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    h = jax.nn.relu(h @ p["w2"] + p["b2"])
    return (h @ p["w3"] + p["b3"])[..., 0]


def _fit_predict(key, x, y, mask, cand, config: BananasConfig):
    """Train the ensemble on (x, y)[mask] and return (mean, std) predictions for ``cand``."""
    w = mask.astype(jnp.float32)
    cnt = jnp.maximum(w.sum(), 1.0)
    mu = (y * w).sum() / cnt
    sd = jnp.sqrt(((y - mu) ** 2 * w).sum() / cnt) + 1e-3
    yn = (y - mu) / sd
    opt = optax.adam(config.learning_rate)

    def train_one(k):
        params = _mlp_init(k, config.hidden)

        def loss(p):
            return (((_mlp(p, x) - yn) ** 2) * w).sum() / cnt

        def step(_, carry):
            p, s = carry
            g = jax.grad(loss)(p)
            upd, s = opt.update(g, s, p)
            return optax.apply_updates(p, upd), s

        params, _ = jax.lax.fori_loop(0, config.train_steps, step, (params, opt.init(params)))
        return _mlp(params, cand)

    preds = jax.vmap(train_one)(jax.random.split(key, config.ensemble_size))  # [E, K]
    return preds.mean(0) * sd + mu, preds.std(0) * sd


def _init(key, config: BananasConfig):
    h, b = config.history_size, config.batch_size
    return dict(key=key, adj=jnp.zeros((h, 7, 7), jnp.uint8), ops=jnp.zeros((h, 7), jnp.int8),
                y=jnp.full((h,), -jnp.inf, jnp.float32), n=jnp.int32(0),
                q_adj=jnp.zeros((b, 7, 7), jnp.uint8), q_ops=jnp.zeros((b, 7), jnp.int8))


def _refill(state, key, config: BananasConfig):
    k_par, k_mut, k_n, k_fit = jax.random.split(key, 4)
    mask = jnp.isfinite(state["y"])
    top = jnp.argsort(-jnp.where(mask, state["y"], -jnp.inf))[: min(10, config.history_size)]
    ntop = jnp.clip(mask.sum(), 1, top.shape[0])
    parents = top[jax.random.randint(k_par, (config.num_candidates,), 0, ntop)]
    c_adj, c_ops = state["adj"][parents], state["ops"][parents]
    n_mut = jax.random.randint(k_n, (config.num_candidates,), 1, 4)
    mk = jax.random.split(k_mut, (3, config.num_candidates))
    for r in range(3):
        m_adj, m_ops = jax.vmap(mutate)(mk[r], c_adj, c_ops)
        c_adj = jnp.where((r < n_mut)[:, None, None], m_adj, c_adj)
        c_ops = jnp.where((r < n_mut)[:, None], m_ops, c_ops)
    x = encode(state["adj"], state["ops"])
    mean, std = _fit_predict(k_fit, x, jnp.where(mask, state["y"], 0.0), mask,
                             encode(c_adj, c_ops), config)
    acq = jnp.where(common.raw_valid(c_adj), mean + config.ucb_beta * std, -jnp.inf)
    best = jnp.argsort(-acq)[: config.batch_size]
    return dict(state, q_adj=c_adj[best], q_ops=c_ops[best])


def _propose(state, step, config: BananasConfig):
    key, k_rand, k_ref = jax.random.split(state["key"], 3)
    state = dict(state, key=key)
    r_adj, r_ops = common.first_valid(*common.random_raw_cells(k_rand, (config.candidates_per_step,)))
    after = step - config.num_init
    q = jnp.maximum(after, 0) % config.batch_size
    state = jax.lax.cond((after >= 0) & (q == 0), lambda s: _refill(s, k_ref, config), lambda s: s, state)
    init_phase = after < 0
    adj = jnp.where(init_phase, r_adj, state["q_adj"][q])
    ops = jnp.where(init_phase, r_ops, state["q_ops"][q])
    return state, (adj, ops)


def _update(state, step, cell, result, config: BananasConfig):
    h = config.history_size
    full = state["n"] >= h
    worst = jnp.argmin(state["y"])
    slot = jnp.where(full, worst, state["n"])
    ins = result.valid & (~full | (result.valid_acc > state["y"][worst]))
    adj, ops = cell
    new = dict(state, adj=state["adj"].at[slot].set(adj), ops=state["ops"].at[slot].set(ops),
               y=state["y"].at[slot].set(result.valid_acc),
               n=jnp.minimum(state["n"] + 1, h))
    return jax.tree.map(lambda a, b: jnp.where(ins, a, b), new, state)


ALGORITHM = common.Algorithm("bananas", _init, _propose, _update)


def bananas(key, table, config: BananasConfig = BananasConfig(),
            budget: common.SearchBudget = common.SearchBudget()) -> common.Trajectory:
    """One seed of the BANANAS-style search (see :func:`search.run` for many seeds in one program).

    Returns:
      A :class:`~search.common.Trajectory` with ``[max_evaluations]`` arrays.
    """
    from search import run

    return jax.tree.map(lambda x: x[0], run(ALGORITHM.name, key[None], table, config, budget=budget))
