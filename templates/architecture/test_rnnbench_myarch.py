"""The plugin's own tests: `pip install -e .[test] && pytest`."""

from rnnbench import check_architecture
from rnnbench_myarch import MyArch


def test_myarch_conforms():
    check_architecture(MyArch)   # shapes, padding invariance, causality, carried state, gradient, determinism


def test_myarch_conforms_with_relu():
    check_architecture(MyArch, MyArch.Options(nonlinearity="relu", recurrent_scale=0.5))
