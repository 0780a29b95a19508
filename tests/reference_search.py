"""TEST-ONLY plain-Python references of random search and regularized evolution.

Written from the reference spec §8.4 (the benchmark scripts' protocol), one seed at a time
with Python lists, ``random.Random`` and the original-style lookup: build a ``ModelSpec`` from
the raw 7x7 matrix, reject more than 9 raw edges or ``OutOfDomainError``, hash with the
original module hash and look the hash up in a dict. Nothing here uses JAX or the code under
test, so the JAX implementations can be compared with it in distribution.
"""

from __future__ import annotations

import collections
import random

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.graph import reference
from nasbench_jax.spec import ModelSpec, is_valid

TRIU = list(zip(*np.triu_indices(7, k=1)))
OPS = list(C.AVAILABLE_OPS)


class RefBench:
    """The tabular benchmark over a small store given as arrays (108 epochs only)."""

    def __init__(self, adjacency, operations, num_vertices, valid, test, time):
        self.rows = {}
        for i in range(len(num_vertices)):
            v = int(num_vertices[i])
            h = reference.hash_module(np.asarray(adjacency[i])[:v, :v], list(operations[i][:v]))
            self.rows[h] = i
        self.valid, self.test, self.time = valid, test, time  # [N, R] at 108 epochs

    @classmethod
    def from_store(cls, store):
        """Keyed by the store's module hashes (computed by the enumeration, not re-hashed)."""
        b = [int(x) for x in np.asarray(store.budgets)].index(108)
        self = cls.__new__(cls)
        self.rows = {h.decode(): i for i, h in enumerate(np.asarray(store.module_hash))}
        self.valid = np.asarray(store.final_validation_accuracy[:, b])
        self.test = np.asarray(store.final_test_accuracy[:, b])
        self.time = np.asarray(store.final_training_time[:, b])
        return self

    def objective(self, config, rng: random.Random):
        """``config = (edges tuple of 21 bits, ops tuple of 5)`` -> (valid acc, cost, mean test,
        is_valid)."""
        edges, ops = config
        m = np.zeros((7, 7), np.int64)
        for k, (r, c) in enumerate(TRIU):
            m[r, c] = edges[k]
        if m.sum() > C.MAX_EDGES:
            return 0.0, 0.0, 0.0, False
        spec = ModelSpec(m, ["input"] + [OPS[o] for o in ops] + ["output"])
        if not is_valid(spec):
            return 0.0, 0.0, 0.0, False
        row = self.rows.get(spec.hash_spec())
        if row is None:  # partial store: treated like OutOfDomainError
            return 0.0, 0.0, 0.0, False
        r = rng.randrange(self.valid.shape[1])
        return float(self.valid[row, r]), float(self.time[row, r]), float(np.mean(self.test[row])), True


def random_config(rng: random.Random):
    return tuple(rng.randrange(2) for _ in range(21)), tuple(rng.randrange(3) for _ in range(5))


def mutate(config, rng: random.Random):
    edges, ops = list(config[0]), list(config[1])
    var = rng.randrange(26)
    if var < 21:
        edges[var] = 1 - edges[var]
    else:
        choices = [o for o in range(3) if o != ops[var - 21]]
        ops[var - 21] = rng.choice(choices)
    return tuple(edges), tuple(ops)


def _track(bench, rng, max_time):
    """Incumbent bookkeeping shared by both methods; returns (evaluate, state). ``inc_test``
    is the incumbent's mean test accuracy after the last step that ended at time <= max_time
    (the run itself goes on until the first step that crosses it)."""
    state = {"time": 0.0, "inc_valid": None, "inc_test_now": 0.0, "inc_test": 0.0}

    def evaluate(config):
        acc, cost, mtest, ok = bench.objective(config, rng)
        if ok:
            state["time"] += cost
            if state["inc_valid"] is None or acc > state["inc_valid"]:
                state["inc_valid"], state["inc_test_now"] = acc, mtest
        if state["time"] <= max_time:
            state["inc_test"] = state["inc_test_now"]
        return acc

    return evaluate, state


def random_search(bench: RefBench, seed: int, max_time: float):
    """Incumbent mean test accuracy at ``max_time`` and elapsed time of one random-search run."""
    rng = random.Random(seed)
    evaluate, state = _track(bench, rng, max_time)
    while state["time"] <= max_time:
        evaluate(random_config(rng))
    return state["inc_test"], state["time"]


def regularized_evolution(bench: RefBench, seed: int, max_time: float, population_size: int,
                          tournament_size: int):
    """Incumbent mean test accuracy at ``max_time`` of one RE run (scripts' protocol, §8.4)."""
    rng = random.Random(seed)
    evaluate, state = _track(bench, rng, max_time)
    population = collections.deque()
    while len(population) < population_size and state["time"] <= max_time:
        c = random_config(rng)
        population.append((c, evaluate(c)))
    while state["time"] <= max_time:
        sample = [rng.choice(population) for _ in range(tournament_size)]
        parent = max(sample, key=lambda m: m[1])
        child = mutate(parent[0], rng)
        population.append((child, evaluate(child)))
        population.popleft()
    return state["inc_test"], state["time"]
