"""The ``nasbench-jax train`` subcommand: config loading, --config.FIELD overrides, clear errors.

(A full CLI training run, JSON record on stdout, is exercised by test_train_resume.py.)
"""

import pathlib

import pytest

from nasbench_jax import cli
from nasbench_jax.errors import ConfigError
from train import cli as train_cli

REPO = pathlib.Path(__file__).resolve().parents[1]
GOOD = ["--matrix", "[[0,1,0],[0,0,1],[0,0,0]]", "--ops", '["input","conv3x3-bn-relu","output"]']


def test_load_config_by_name_and_by_path():
    by_name = train_cli.load_config("cpu_tiny")
    by_path = train_cli.load_config(str(REPO / "configs" / "cpu_tiny.py"))
    assert by_name.to_dict() == by_path.to_dict()
    assert by_name.stem_filter_size == 8 and train_cli.load_config("nasbench101").batch_size == 256
    with pytest.raises(ConfigError, match="no shipped config"):
        train_cli.load_config("nope")
    with pytest.raises(ConfigError, match="not found"):
        train_cli.load_config("/does/not/exist.py")


def test_overrides_parse_literals_and_reject_unknown_fields():
    c = train_cli.load_config("cpu_tiny")
    train_cli.apply_overrides(c, [("train_epochs", "12"), ("learning_rate", "1"), ("dataset", "synthetic"),
                                  ("lr_decay_method", "STEPWISE")])
    assert c.train_epochs == 12 and c.learning_rate == 1.0 and isinstance(c.learning_rate, float)
    assert c.lr_decay_method == "STEPWISE"
    with pytest.raises(ConfigError, match="unknown config field 'no_such_field'"):
        train_cli.apply_overrides(c, [("no_such_field", "1")])
    with pytest.raises(ConfigError, match="batch_size"):
        train_cli.apply_overrides(c, [("batch_size", "'big'")])


@pytest.mark.parametrize("extra,message", [
    (["--config.no_such_field=3"], "unknown config field"),
    (["--config.batch_size=36"], "not divisible"),
    (["--config.batch_size", "36"], "not divisible"),  # space-separated form
    (["--matrix", "[[0,1],", "--ops", "[]"], "not valid JSON"),
    (["--matrix", "[[0,1,0],[0,0,0],[0,0,0]]"], "disconnected"),
])
def test_cli_reports_user_errors_with_exit_code_2(tmp_path, capsys, extra, message):
    args = ["train", "--config", "cpu_tiny", "--workdir", str(tmp_path / "w"), *GOOD, *extra]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "nasbench-jax train: error:" in err and message in err, err
    assert not (tmp_path / "w").exists()
