"""The ``nasbench-jax`` command: one entry point, one subcommand per task.

Each subcommand lives in its own module exposing ``configure(parser)`` (add arguments) and
``run(args) -> int`` (do the work, return an exit status). Modules are imported lazily, so
``nasbench-jax query`` never imports TensorFlow or the training stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nasbench_jax.errors import NASBenchError

#: subcommand -> (module, one-line help)
COMMANDS = {
    "enumerate": ("nasbench_jax.commands.enumerate", "enumerate every unique cell of the space"),
    "train": ("train.cli", "train one cell with the paper's protocol"),
    "build": ("train.build_cli", "train many cells as one worker and write a store shard"),
    "import": ("nasbench_jax.commands.store_io", "import an original .tfrecord into an .npz store"),
    "export": ("nasbench_jax.commands.store_io", "export an .npz store to the original .tfrecord format"),
    "verify": ("nasbench_jax.commands.store_io", "check an .npz store"),
    "merge": ("nasbench_jax.commands.store_io", "merge store shards"),
    "query": ("nasbench_jax.commands.query", "query one cell from a store"),
    "synthesize": ("nasbench_jax.commands.synthesize", "write a full-space store with synthetic metrics"),
    "search": ("search.cli", "run a NAS algorithm over many seeds on a store"),
    "plot": ("search.cli", "plot regret curves of search runs"),
    "demo": ("nasbench_jax.commands.demo", "offline demo on the embedded real-data store"),
}


def _load(name: str):
    module_name = COMMANDS[name][0]
    return importlib.import_module(module_name)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasbench-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # Only the requested subcommand's module is imported (keeps start-up fast).
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == wanted:
            mod = _load(name)
            configure = getattr(mod, f"configure_{name}", None) or mod.configure
            configure(p)
            p.set_defaults(_run=getattr(mod, f"run_{name}", None) or mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except NASBenchError as e:
        print(f"nasbench-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
