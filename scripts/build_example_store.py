"""Build the shipped example store ``nasbench_jax/data/nb101_sample.npz``.

From the 1,052 real NAS-Bench-101 records in ``shared/data`` (see that folder's README and
``nasbench_jax/data/README.md`` for sources and exactly what is present)::

    python scripts/build_example_store.py [--data ../shared/data] [--out nasbench_jax/data/nb101_sample.npz]

* 52 cells (automl/NASLib nb101 dummy data): all three 108-epoch repeats, halfway and final
  train/validation/test accuracy and training time.
* 1,000 cells (tiga1231/nasbench-vis data-1k.json): one published final validation accuracy
  per budget (4, 12, 36, 108) and one 108-epoch final training time, stored in repeat 0; every
  other value is NaN.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax import store as st

REPO = pathlib.Path(__file__).resolve().parents[1]
_LABEL = {C.INPUT: -1, C.OUTPUT: -2, **{op: i for i, op in enumerate(C.AVAILABLE_OPS)}}

PROVENANCE = [
    {
        "records": 1000,
        "source": "tiga1231/nasbench-vis, static/data/data-1k.json (first 1,000 module hashes of NAS-Bench-101)",
        "content": "final_validation_accuracy of one repeat per budget (stored in repeat 0), "
        "final_training_time at 108 epochs (repeat 0), trainable_parameters, stored representative",
    },
    {
        "records": 52,
        "source": "automl/NASLib test assets (nb101 dummy data, produced with the original NAS-Bench-101 API)",
        "content": "all three 108-epoch repeats: halfway/final train, validation, test accuracy and training time",
    },
    {
        "dataset": "NAS-Bench-101 (Ying et al., ICML 2019, arXiv:1902.09635), google-research/nasbench, Apache-2.0",
    },
]


def build(data_dir: pathlib.Path) -> st.Store:
    """The example store from the two shared JSON files."""
    sample = json.loads((data_dir / "nb101_sample_1k.json").read_text())
    full = json.loads((data_dir / "nb101_full_records_52.json").read_text())
    n = len(sample) + len(full)
    b, r = len(C.BUDGETS), C.NUM_REPEATS
    adj = np.zeros((n, 7, 7), np.uint8)
    ops = np.full((n, 7), C.PAD_LABEL, np.int8)
    nv = np.zeros(n, np.int8)
    hashes, params = [], []
    metrics = {m: np.full((n, b, r), np.nan, np.float32) for m in st.METRIC_NAMES}
    for i, rec in enumerate(sample):
        a = np.asarray(rec["adjacency"], np.uint8)
        o = np.asarray(rec["operations"], np.int8)
        v = int((o != C.PAD_LABEL).sum())
        adj[i], ops[i], nv[i] = a, o, v
        hashes.append(rec["hash"])
        params.append(rec["trainable_parameters"])
        for k, epochs in enumerate(C.BUDGETS):
            metrics["final_validation_accuracy"][i, k, 0] = rec["final_validation_accuracy"][str(epochs)]
        metrics["final_training_time"][i, C.BUDGETS.index(108), 0] = rec["final_training_time_108"]
    for j, rec in enumerate(full):
        i = len(sample) + j
        fixed = rec["fixed"]
        a = np.asarray(fixed["module_adjacency"], np.uint8)
        v = a.shape[0]
        adj[i, :v, :v] = a
        ops[i, :v] = [_LABEL[o] for o in fixed["module_operations"]]
        nv[i] = v
        hashes.append(rec["hash"])
        params.append(fixed["trainable_parameters"])
        for epochs, repeats in rec["computed"].items():
            k = C.BUDGETS.index(int(epochs))
            for rep, point in enumerate(repeats):
                for m in st.METRIC_NAMES:
                    metrics[m][i, k, rep] = point[m]
    # every value must be exactly a float32 (the dataset's values are widened float32)
    for m, a in metrics.items():
        assert np.all(np.isnan(a) | (a.astype(np.float64) == a)), m
    return st.make_store(
        adjacency=adj, operations=ops, num_vertices=nv, module_hash=hashes,
        trainable_parameters=params, metrics=metrics, provenance=PROVENANCE, synthetic=False,
        metadata_extra={"description": "1,052 real NAS-Bench-101 records; see nasbench_jax/data/README.md"},
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--out", default=str(REPO / "nasbench_jax" / "data" / "nb101_sample.npz"))
    args = p.parse_args(argv)
    s = build(pathlib.Path(args.data))
    problems = st.verify_store(s, hash_sample=-1)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    st.write_store(args.out, s)
    print(f"wrote {args.out}: {s.num_cells} cells, {os.path.getsize(args.out):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
