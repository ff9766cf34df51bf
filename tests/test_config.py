import pytest

from rnnbench.core import registry
from rnnbench.training.config import parse_assignments, parse_count, resolve
from rnnbench.core.errors import BenchmarkError

LSTM, COPY = registry.get_architecture("lstm"), registry.get_task("copy")


def test_resolution_order_defaults_then_preset_then_set():
    config = resolve(LSTM, COPY, {"arch.hidden_size": "24"}, preset="quick")
    flat = config.flat()
    assert flat["optim.lr"] == COPY.defaults["optim.lr"]             # task default
    assert flat["trainer.max_steps"] == COPY.presets["quick"]["trainer.max_steps"]  # preset
    assert flat["arch.hidden_size"] == 24                             # --set wins
    assert flat["arch.num_layers"] == 1                               # plugin option default


def test_values_are_typed():
    config = resolve(LSTM, COPY, {"optim.clip_norm": "none", "trainer.early_stopping": "false",
                                  "arch.params": "10k", "optim.lr": "1e-2"})
    assert config.optim.clip_norm is None
    assert config.trainer.early_stopping is False
    assert config.model.params == 10_000
    assert config.optim.lr == 0.01


@pytest.mark.parametrize("overrides, message", [
    ({"optim.lr": "fast"}, "optim.lr expects a number"),
    ({"optim.lrr": "0.1"}, "Did you mean 'optim.lr'"),
    ({"optim.optimizer": "adma"}, "Did you mean 'adam'"),
    ({"arch.num_layers": "2.5"}, "expects an integer"),
    ({"lr": "0.1"}, "needs a namespace"),
    ({"trainer.batch_size": "0"}, "trainer.batch_size must be at least 1"),
    ({"trainer.max_steps": "none"}, "no budget"),
])
def test_bad_values_name_the_problem_and_the_fix(overrides, message):
    with pytest.raises(BenchmarkError, match=message):
        resolve(LSTM, COPY, overrides)


def test_unknown_preset():
    with pytest.raises(BenchmarkError, match="Did you mean 'quick'"):
        resolve(LSTM, COPY, preset="quik")


def test_assignment_and_count_parsing():
    assert parse_assignments(["a.b=1", "c.d = x"]) == {"a.b": "1", "c.d": "x"}
    with pytest.raises(BenchmarkError, match="key=value"):
        parse_assignments(["oops"])
    assert parse_count("100k") == 100_000 and parse_count("1.5M") == 1_500_000 and parse_count("7") == 7


def test_a_half_open_range_says_which_end_is_excluded():
    from rnnbench.core.constraints import Range

    assert Range(0, 1, high_open=True).describe() == "in [0, 1): at least 0, less than 1"
    assert Range(0, 1, low_open=True, high_open=True).describe() == "in (0, 1): greater than 0, less than 1"
    assert Range(0, 1).describe() == "between 0 and 1"
