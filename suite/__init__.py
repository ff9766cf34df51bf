"""rnnbench: a plugin-based benchmark suite for recurrent architectures.

The public API, the one surface plugin packages import from (`from rnnbench import ...`): the two
declarations and their batch formats, registration, the value constraints of options, and the
task toolkit (heads, in-memory batching). Everything else (runner, store, sweep, CLI) is the
suite's own and may change between releases. Names are loaded on first use, so that
`import rnnbench` (and the CLI's argument errors) stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "rnnbench.core.contracts": ("Architecture", "Task", "Capabilities", "Requirements", "Encoder", "Baseline",
                           "EncoderOutput", "SequenceBatch", "TreeBatch", "GridBatch", "Batch",
                           "Inputs", "InputSpec", "Splits", "Reference", "IGNORE_INDEX",
                           "DecoderParts", "DECODER", "sequence_output"),
    "rnnbench.core.registry": ("register_architecture", "register_task"),
    "rnnbench.core.errors": ("BenchmarkError",),
    "rnnbench.core.constraints": ("Constraint", "Positive", "NonNegative", "Probability", "UnitInterval",
                             "AtLeast", "AtMost", "Between", "Range", "Odd", "NonEmpty",
                             "AllowNonFinite"),
    "rnnbench.toolkit.heads": ("Head", "HeadOutput", "PerStepClassifier", "PooledClassifier",
                       "PooledRegressor", "PerStepRegressor", "PerPixelBernoulli", "AnswerClassifier"),
    "rnnbench.toolkit.batching": ("IndexBatches",),
    "rnnbench.toolkit.generated": ("Generated", "LengthRanges", "fixed_length_splits", "length_splits"),
    "rnnbench.toolkit.text": ("Batching", "BucketBatches"),
    "rnnbench.toolkit.seq2seq_head": ("Seq2SeqHead",),
    "rnnbench.toolkit.decoding": ("greedy_decode", "beam_search"),
    "rnnbench.toolkit.scans": ("linear_scan", "log_space_scan", "sequential_scan", "freeze_padding",
                               "delta_rule_chunkwise", "delta_rule_sequential"),
    "rnnbench.conformance.kit": ("check_architecture", "conformance_checks", "ConformanceError"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'rnnbench' has no attribute '{name}'")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
