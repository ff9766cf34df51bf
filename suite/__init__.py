"""rnnbench: a plugin-based benchmark suite for recurrent architectures."""

__version__ = "0.1.0"
