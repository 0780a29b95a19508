"""``nasbench-jax train``: train one cell with the paper's protocol and print its record as JSON.

::

    nasbench-jax train --config cpu_tiny --workdir /tmp/run \\
        --matrix '[[0,1,1],[0,0,1],[0,0,0]]' --ops '["input","conv3x3-bn-relu","output"]' \\
        --dataset synthetic --config.train_epochs=2

``--config`` is a path to a config file defining ``get_config()`` or the name of a shipped config
(``nasbench101``, ``cpu_tiny``). Any field can be overridden with ``--config.FIELD=VALUE``
(VALUE parsed as a Python literal, else taken as a string). Re-running with the same workdir
resumes from the last checkpoint. Metrics go to TensorBoard event files in the workdir (clu).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import logging
import os
import sys
from typing import Any

from nasbench_jax.errors import ConfigError, SpecError

__all__ = ["configure", "run", "load_config", "apply_overrides"]

_PREFIX = "--config."


def load_config(name_or_path: str) -> Any:
    """Load ``get_config()`` from a config file path or a shipped config name.

    Raises:
      ConfigError: the file/name does not exist or defines no ``get_config``.
    """
    if os.path.isfile(name_or_path):
        module_name = "_nasbench_config_" + os.path.splitext(os.path.basename(name_or_path))[0]
        spec = importlib.util.spec_from_file_location(module_name, name_or_path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # a broken user config file
            raise ConfigError(f"cannot load config file {name_or_path}: {type(e).__name__}: {e}") from None
    else:
        name = os.path.splitext(os.path.basename(name_or_path))[0]
        if os.path.sep in name_or_path or not name.isidentifier():
            raise ConfigError(f"config file not found: {name_or_path}")
        try:
            module = importlib.import_module(f"configs.{name}")
        except ModuleNotFoundError:
            raise ConfigError(f"no config file {name_or_path!r} and no shipped config named {name!r}") from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config {name_or_path} defines no get_config()")
    return module.get_config()


def apply_overrides(config: Any, overrides: list[tuple[str, str]]) -> Any:
    """Apply ``(field, text)`` overrides; text is a Python literal or a plain string.

    Raises:
      ConfigError: unknown field or a value of the wrong type.
    """
    for field, text in overrides:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        target = config
        parts = field.split(".")
        for part in parts[:-1]:
            if part not in target:
                raise ConfigError(f"unknown config field {field!r}")
            target = target[part]
        if parts[-1] not in target:
            raise ConfigError(f"unknown config field {field!r}")
        old = target[parts[-1]]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            target[parts[-1]] = value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--config.{field}={text}: {e}") from None
    return config


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments (and ``--config.FIELD=VALUE`` override support)."""
    add_config_arguments(parser)
    parser.add_argument("--matrix", required=True, help="adjacency matrix as JSON, e.g. '[[0,1],[0,0]]'")
    parser.add_argument("--ops", required=True, help="vertex labels as JSON, e.g. '[\"input\",\"output\"]'")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and results.json (resumed if present)")
    parser.add_argument("--dataset", default=None, help="cifar10 | synthetic | path to cifar-10-python.tar.gz")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-metrics", action="store_true",
                        help="do not write TensorBoard metrics (avoids importing TensorFlow)")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config NAME_OR_PATH`` plus ``--config.FIELD=VALUE`` overrides (in ``args.config_overrides``)."""
    parser.add_argument("--config", required=True, help="config file path or shipped name (nasbench101, cpu_tiny)")
    parser.epilog = "Override any config field with --config.FIELD=VALUE, e.g. --config.train_epochs=12."
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        rest, overrides, i = [], [], 0
        while i < len(args):
            a = args[i]
            if a.startswith(_PREFIX):
                body = a[len(_PREFIX):]
                if "=" in body:
                    field, text = body.split("=", 1)
                elif i + 1 < len(args):
                    field, text = body, args[i + 1]
                    i += 1
                else:
                    parser.error(f"{a} needs a value")
                overrides.append((field, text))
            else:
                rest.append(a)
            i += 1
        ns, extra = original(rest, namespace)
        ns.config_overrides = overrides
        return ns, extra

    parser.parse_known_args = parse_known_args


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"--{what} is not valid JSON: {e}") from None


def run(args: argparse.Namespace) -> int:
    """Train, print the record as JSON on stdout, return 0."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "orbax", "jax._src"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from nasbench_jax.spec import ModelSpec

    config = load_config(args.config)
    apply_overrides(config, list(getattr(args, "config_overrides", [])))
    if args.dataset is not None:
        config.dataset = args.dataset
    spec = ModelSpec(_parse_json(args.matrix, "matrix"), _parse_json(args.ops, "ops"))

    from train.train import train_and_evaluate

    record = train_and_evaluate(spec, config, args.workdir, show_progress=not args.no_progress,
                                write_metrics=not args.no_metrics)
    json.dump(record.to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
