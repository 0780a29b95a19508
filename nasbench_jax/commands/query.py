"""``nasbench-jax query``: one ``NASBench.query`` from the command line, printed as JSON.

    nasbench-jax query --matrix '[[0,1],[0,0]]' --ops '["input","output"]'
    nasbench-jax query --store nb101.npz --matrix ... --ops ... --epochs 36 --stop-halfway --seed 0

Without ``--store`` the shipped example store (1,052 real records) is used.
"""

from __future__ import annotations

import argparse
import json

from nasbench_jax.errors import NASBenchError, SpecError


class QueryError(NASBenchError, ValueError):
    """The query cannot be answered (bad arguments, or the cell is not in the store)."""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="store (.npz) or original .tfrecord; default: the example store")
    p.add_argument("--matrix", required=True, help="adjacency matrix as JSON, e.g. '[[0,1],[0,0]]'")
    p.add_argument("--ops", required=True, help='operations as JSON, e.g. \'["input","output"]\'')
    p.add_argument("--epochs", type=int, default=108, help="budget (default 108)")
    p.add_argument("--stop-halfway", action="store_true", help="report the halfway evaluation")
    p.add_argument("--seed", type=int, default=None, help="seed of the repeat draw")


def _json_arg(text: str, name: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"--{name} is not valid JSON: {e}") from None


def run(args) -> int:
    from nasbench_jax import api  # noqa: PLC0415

    matrix = _json_arg(args.matrix, "matrix")
    ops = _json_arg(args.ops, "ops")
    spec = api.ModelSpec(matrix, ops)
    nb = api.NASBench(args.store or api.example_store_path(), seed=args.seed)
    try:
        data = nb.query(spec, epochs=args.epochs, stop_halfway=args.stop_halfway)
    except KeyError as e:
        raise QueryError(f"cell {e.args[0]} is not in the store {args.store or api.example_store_path()}") from None
    data["module_adjacency"] = data["module_adjacency"].tolist()
    print(json.dumps(data, indent=1))
    return 0
