"""The two declarations, architecture and task, and the batch formats they meet through.

An architecture says what it can do (`Capabilities`), a task says what it needs (`Requirements`);
`compatibility` decides whether a pair can run. Neither side imports the other.

Causality convention:
- sequences: a causal encoder's output at step t depends only on inputs at steps <= t; a
  generation task shifts its targets by one step.
- grids: a causal encoder's output at (i, j) depends only on pixels strictly before (i, j) in
  raster order, so it can predict pixel (i, j).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from rnnbench.core.constraints import (AllowNonFinite, AtLeast, AtMost, Between, Constraint, NonEmpty,  # noqa: F401
                               NonNegative, Odd, Positive, Probability, Range, UnitInterval)
from rnnbench.core.errors import BenchmarkError

Structure = Literal["sequence", "tree", "grid"]
StateLayout = Literal["single", "bidirectional"]
HeadKind = Literal["generation", "tagging", "classification", "regression", "seq2seq"]
Direction = Literal["min", "max"]


# --------------------------------------------------------------------------- batch formats


@dataclass
class SequenceBatch:
    """Padded sequences. `values` is (B, T) token ids or (B, T, F) features; `lengths` is (B,).

    Steps at or beyond an item's length are padding and must not influence anything.
    """

    values: Tensor
    lengths: Tensor

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    def mask(self) -> Tensor:
        """(B, T) bool, True on real steps."""
        steps = torch.arange(self.values.shape[1], device=self.values.device)
        return steps.unsqueeze(0) < self.lengths.to(self.values.device).unsqueeze(1)


@dataclass
class TreeBatch:
    """A forest of binary trees flattened into one node list, ordered for level-wise batching.

    `values`: (N,) token ids or (N, F) features. Only leaves have an input: an internal node's
    value is filler (id 0 / zeros) that an encoder must not read; it treats the node's input as
    zero (Tai et al. 2015), so e.g. the embedding of id 0 (`<unk>`) gets no gradient from it.
    `left`, `right`: (N,) child indices, -1 for leaves. Every child comes before its parent.
    `height`: (N,) 0 for leaves, 1 + max child height otherwise: all nodes of one height can be
    computed together in one matmul, in increasing height.
    `roots`: (B,) index of each tree's root node. `tree_index`: (N,) the tree each node belongs to.
    """

    values: Tensor
    left: Tensor
    right: Tensor
    height: Tensor
    roots: Tensor
    tree_index: Tensor

    @property
    def batch_size(self) -> int:
        return self.roots.shape[0]


@dataclass
class GridBatch:
    """Images as a (B, C, H, W) float tensor."""

    values: Tensor

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]


Inputs = SequenceBatch | TreeBatch | GridBatch


@dataclass
class Batch:
    """What a task's data loader yields.

    `targets`: what the head is trained on (padding positions hold `IGNORE_INDEX` for tokens).
    `metric_mask`: optional bool mask of the positions that metrics count (default: all real
    positions), e.g. only the recalled symbols of the copy task.
    `decoder_inputs`: encoder-decoder tasks only (`Requirements.decoder`): the target sequence as
    the decoder reads it, shifted right by one step (begin-of-sequence id first, (B, T) target
    token ids), so that `targets[:, t]` is predicted from `decoder_inputs.values[:, :t + 1]`.
    `instance_length`: generated tasks scored by length only (length generalisation): (B,) the
    length n each item was generated at (a Chomsky-hierarchy string's length, not its padded
    steps), which `rnnbench.toolkit.metrics.AccuracyByLength` groups the scores by.
    """

    inputs: Inputs
    targets: Tensor
    metric_mask: Tensor | None = None
    decoder_inputs: SequenceBatch | None = None
    instance_length: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.inputs.batch_size


IGNORE_INDEX = -100


# --------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class Capabilities:
    """What an architecture can do; `compatibility` matches it against a task's `Requirements`.

    causal: output at t sees only inputs <= t (see module docstring for grids). Required by
        generation and prediction tasks (`Requirements.causal`); the conformance kit checks it.
    structures: input structures the encoder reads, e.g. ("sequence",) or ("tree", "sequence")
        for a tree network that builds a balanced tree over a plain sequence.
    state_layout: how the encoder's `EncoderOutput.final` is laid out. "single" (default): one
        direction, `final` is (B, 1, O) and `Architecture.output_size(hidden)` = hidden.
        "bidirectional": a forward and a backward direction, `final` is (B, 2, O // 2) (forward
        first) and `output_size(hidden)` = 2 x hidden; `directions` gives 1 or 2.
    carries_state: True (default) if `Encoder.forward(inputs, state)` accepts the `state` of its
        previous `EncoderOutput` and continues from it exactly as if the two inputs had been one
        (two halves with the state carried equal the whole; the conformance kit checks it). A task
        whose `Requirements.carries_state` is set needs it (truncated BPTT, free running,
        sampling). False: the encoder ignores `state` and may return None as its state.
    closed_form_readout: False (default). True if the encoder also offers
        `fit_readout(pairs, readout)` (see `Encoder`), which sets the head's linear readout
        (`rnnbench.toolkit.heads.Head.readout`) in closed form; `optim.optimizer=ridge` then trains with it
        instead of gradients (regression tasks only).
    forget_gate: False (default). True if the cell has forget gates (the LSTM family) and the
        encoder lists their biases in `Encoder.forget_gate_biases()`: `arch.forget_bias` sets them
        (Gers et al. 2000; Jozefowicz et al. 2015). It may list none for some options (deep_rnn
        with arch.cell=gru), which a run then refuses too.
    recurrent_matrices: False (default). True if the encoder trains square recurrent matrices
        and lists them in `Encoder.recurrent_matrices()`: `arch.recurrent_init=orthogonal` draws
        each orthogonal (Saxe et al. 2014). Leave it False for a fixed recurrence (an echo-state
        reservoir, which is never trained).
    parallel_form: False (default). True if `forward` computes the whole sequence at once (a
        scan, a convolution, a chunkwise form) and the encoder also offers the plain step-by-step
        loop, `Encoder.forward_recurrent`: the conformance kit checks that the two agree, and
        agree with the sequence run in chunks with the state carried.
    """

    causal: bool
    structures: tuple[Structure, ...]
    state_layout: StateLayout = "single"
    carries_state: bool = True
    closed_form_readout: bool = False
    forget_gate: bool = False
    recurrent_matrices: bool = False
    parallel_form: bool = False

    @property
    def directions(self) -> int:
        return 2 if self.state_layout == "bidirectional" else 1


class EncoderOutput(NamedTuple):
    """outputs: per-step (B, T, O) / per-node (N, O) / per-pixel (B, O, H, W).
    final: (B, D, O // D), the last state of each of D directions (D = 2 when bidirectional).
    state: whatever the encoder needs to continue from here (None if it cannot carry state).
    """

    outputs: Tensor
    final: Tensor
    state: Any


class Encoder(nn.Module):
    """An architecture's encoder: `forward(inputs, state=None) -> EncoderOutput`.

    An encoder whose capabilities declare `closed_form_readout` also has
    `fit_readout(pairs, readout)`: `pairs` yields (features (N, O), targets (N, out)) over the
    training split, and it sets the head's `readout` (an nn.Linear) in closed form
    (`optim.optimizer=ridge`), with no backpropagation.

    An encoder whose capabilities declare `forget_gate` or `recurrent_matrices` overrides
    `forget_gate_biases` or `recurrent_matrices`, which name the tensors the initialisation
    settings (`arch.forget_bias`, `arch.recurrent_init`) write into, in place, without gradients.
    """

    output_size: int

    def forward(self, inputs: Inputs, state: Any = None) -> EncoderOutput:  # pragma: no cover
        raise NotImplementedError

    def forward_recurrent(self, inputs: Inputs, state: Any = None) -> EncoderOutput:
        """The same function as `forward`, computed step by step (the recurrence written as a loop):
        the reference that an encoder whose capabilities declare `parallel_form` is checked
        against."""
        raise BenchmarkError(f"{type(self).__name__} has no step-by-step path (its architecture does "
                             f"not declare parallel_form)")

    def fit_readout(self, pairs: Iterable[tuple[Tensor, Tensor]], readout: nn.Linear) -> None:
        """Set the head's linear `readout` in closed form from (features, targets) pairs; only an
        encoder whose architecture declares `Capabilities.closed_form_readout` overrides it."""
        raise BenchmarkError(f"{type(self).__name__} has no closed-form readout (its architecture "
                             f"does not declare closed_form_readout): use optim.optimizer=adam")

    def forget_gate_biases(self) -> list[tuple[Tensor, ...]]:
        """The forget-gate biases b_f, one entry per layer (and direction): the tensors, views of
        parameters, whose sum is the bias the forget gate adds (PyTorch's LSTM: the forget slices
        `[H:2H]` of `bias_ih` and `bias_hh`). `arch.forget_bias=b` sets each of an entry's k
        tensors to b / k. Default: none."""
        return []

    def recurrent_matrices(self) -> list[Tensor]:
        """The trained square recurrent matrices, each (H, H), views of parameters: one per gate
        of a gated cell (an LSTM's W_hh is four), per layer and direction, per delay.
        `arch.recurrent_init=orthogonal` draws each as a random orthogonal matrix. Default: none."""
        return []

    def fixed_weights(self) -> list[Tensor]:
        """Weights the encoder uses but never trains (an echo-state network's reservoir and input
        weights), not counted as trained parameters: the leaderboard shows their count (nonzero
        entries) beside the trained one. Not masks or other constants. Default: none."""
        return []


class Architecture:
    """Base of every architecture plugin. Subclass, set the class attributes, implement `build`.

    `Options` is a dataclass of the plugin's own typed hyper-parameters with defaults.
    `depth_option`: the option, if any, that sets the depth of a stack whose size grows linearly
    with it (e.g. "num_layers"); `estimate_parameters` then never builds the full stack.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    capabilities: ClassVar[Capabilities]
    depth_option: ClassVar[str | None] = None

    @dataclass
    class Options:
        pass

    def output_size(self, hidden_size: int) -> int:
        """The feature size O of the encoder `build(input_size, hidden_size, ...)` returns: the
        last dimension of its per-step outputs (the channel dimension for grids), what the task's
        head is built for (`Task.build_head(encoder_output_size=...)`), and equal to the encoder's
        own `output_size` attribute. Default: `hidden_size` times the directions of
        `capabilities.state_layout` (2 x hidden when bidirectional); override it when the encoder
        outputs another size."""
        return hidden_size * self.capabilities.directions

    def build(self, input_size: int, hidden_size: int, options: Any) -> Encoder:
        raise NotImplementedError

    def estimate_parameters(self, input_size: int, hidden_size: int, options: Any) -> int:
        """Parameters and buffers of the encoder `build` would return, without allocating them:
        built on the meta device, at depths 1 and 2 and extrapolated linearly when the
        architecture declares a `depth_option`."""
        def size(built_options: Any) -> int:
            with torch.device("meta"):
                encoder = self.build(input_size, hidden_size, built_options)
            return sum(t.numel() for t in (*encoder.parameters(), *encoder.buffers()))

        if self.depth_option is None:
            return size(options)
        depth = getattr(options, self.depth_option)
        one, two = (size(dataclasses.replace(options, **{self.depth_option: d})) for d in (1, 2))
        return one + (depth - 1) * (two - one)


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Requirements:
    """What a task needs from an encoder.

    structure: the input structure its batches hold (`SequenceBatch`, `TreeBatch`, `GridBatch`).
    causal: the encoder must be causal (`Capabilities.causal`): generation and prediction tasks.
    carries_state: the task's batches are consecutive pieces of longer streams: the encoder must
        carry state (`Capabilities.carries_state`), and the runner carries the encoder state from
        one batch to the next (detached: truncated BPTT) instead of starting each from none.
    decoder: an encoder-decoder task (Cho et al. 2014; Sutskever et al. 2014) sets what its second
        encoder, the decoder that generates the target, needs, normally `DECODER`. The
        architecture under test then reads the source (and need only meet the fields above: a
        bidirectional one is fine), and the decoder is the architecture its `decoder` option
        names (None: the same one); `compatibility` checks both. The decoder is conditioned only
        through its inputs (`DecoderParts`), never through the encoder's opaque carried state.
    """

    structure: Structure
    causal: bool = False
    carries_state: bool = False
    decoder: "Requirements | None" = None


DECODER = Requirements(structure="sequence", causal=True, carries_state=True)
"""What a decoder must be: causal (it generates), and able to carry state (it is run one step at a
time when decoding, its state carried from step to step)."""


@dataclass(frozen=True)
class InputSpec:
    """Token inputs get an embedding of `vocab_size`; feature inputs go in with `features`.
    An encoder-decoder task also gives `target_vocab_size`, the decoder's token vocabulary: the
    decoder reads its own embedding of it (of the same size as the source embedding)."""

    vocab_size: int | None = None
    features: int | None = None
    target_vocab_size: int | None = None


class DecoderParts(NamedTuple):
    """What the runner builds for a task whose requirements declare a decoder, and hands to its
    `build_head(..., decoder=parts)`: the head owns them and runs the decoder.

    embedding: the target tokens' embedding, (target_vocab_size, E).
    encoder: the decoder architecture's encoder, built for inputs of size E + `context_size`: each
        step reads the embedded previous target token concatenated with the context vector, the
        encoder's final state of every direction, pooled into one vector (Cho et al. 2014, eq. 3:
        the summary c feeds every decoder step).
    context_size: the size of that context vector, the source encoder's output size.
    """

    embedding: nn.Embedding
    encoder: "Encoder"
    context_size: int


@dataclass(frozen=True)
class Reference:
    """A published number to show beside ours."""

    model: str
    value: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Baseline:
    """A trivial predictor that a task declares (predicting the mean, the majority class, a
    unigram model, ...): the runner scores it with the task's own metrics on the same test set as
    the run, per seed, and records it as `baseline/NAME`; a leaderboard row that is not beyond the
    strongest baseline "did not learn" and is not ranked. `predict(batch)` returns predictions in
    the format of the task's head (what its `update_metrics` reads: logits, values, ...)."""

    name: str
    predict: Callable[["Batch"], Tensor]


@dataclass
class Splits:
    """Iterables of `Batch` per split. `train` is re-iterated every epoch."""

    train: Any
    val: Any
    test: Any


class Task:
    """Base of every task plugin. Subclass, set the class attributes, implement the methods.

    Each split's metrics are the task's `metrics()` plus `loss`, the mean loss per supervised item
    over the whole split (cross-entropy in nats, or squared error).
    defaults: namespaced settings this task prefers, e.g. {"optim.lr": 1e-3, "trainer.max_steps": 500}.
    presets: named sets of settings, e.g. {"quick": {"trainer.max_steps": 50}}.
    State carried across batches is declared in `requirements` (`Requirements.carries_state`).
    generates_text: the task is a language model over text and implements `encode` and `decode`;
        `rnnbench sample RUN_ID --prime ...` then writes text from its runs.
    draws_images: the task is a generative image model and implements `sample`; `rnnbench sample
        RUN_ID` then writes an image grid from its runs.
    curve_setting: a setting the primary metric is studied as a function of (e.g. "task.length"
        for the probes): the leaderboard then adds a table with one column per value of it.
    ranked_together: task settings that change how the model is built or trained, not the data it
        is tested on or how it is scored (e.g. "task.batching", "task.output_layer"): the
        leaderboard ranks runs that differ in them in one table; every other task setting that
        varies gives a table per value.
    item_unit: what the head's `count` counts, one supervised item (tokens, sentences, images,
        steps): the unit of the loss average and of the throughput figure (items per second).
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    requirements: ClassVar[Requirements]
    head_kind: ClassVar[HeadKind]
    primary_metric: ClassVar[str]
    direction: ClassVar[Direction]
    defaults: ClassVar[dict[str, Any]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    generates_text: ClassVar[bool] = False
    draws_images: ClassVar[bool] = False
    curve_setting: ClassVar[str | None] = None
    ranked_together: ClassVar[tuple[str, ...]] = ()
    item_unit: ClassVar[str] = "items"

    @dataclass
    class Options:
        pass

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "carries_state" in cls.__dict__:
            raise BenchmarkError(f"task {cls.__module__}.{cls.__qualname__} sets `carries_state` on "
                                 f"the class: declare it in its requirements instead, "
                                 f"`Requirements(..., carries_state=True)`")
        requirements = cls.__dict__.get("requirements")
        if (isinstance(requirements, Requirements) and requirements.decoder is not None
                and "decoder" not in {f.name for f in dataclasses.fields(cls.Options)}):
            raise BenchmarkError(f"task {cls.__module__}.{cls.__qualname__} declares a decoder but "
                                 f"its Options have no `decoder` field: add `decoder: str | None = "
                                 f"None` (the decoder's architecture; None: the encoder's)")
        together = cls.__dict__.get("ranked_together", ())
        settings = {f"task.{field.name}" for field in dataclasses.fields(cls.Options)} if together else set()
        unknown = [name for name in together if name not in settings]
        if unknown:
            raise BenchmarkError(f"task {cls.__module__}.{cls.__qualname__} ranks together {unknown[0]!r}, "
                                 f"which is not one of its settings: name fields of its Options as "
                                 f"'task.FIELD' ({', '.join(sorted(settings)) or 'it has none'})")

    def __init__(self, options: Any) -> None:
        self.options = options

    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    def splits(self, batch_size: int, seed: int) -> Splits:
        raise NotImplementedError

    def build_head(self, encoder_output_size: int, embedding: nn.Embedding | None,
                   decoder: DecoderParts | None = None) -> "nn.Module":
        """Return a `rnnbench.toolkit.heads.Head`; `embedding` is offered for weight tying.
        `decoder`: the `DecoderParts` the head runs (e.g. `rnnbench.toolkit.seq2seq_head.Seq2SeqHead`)
        when the task's requirements declare a decoder, else None."""
        raise NotImplementedError

    def metrics(self) -> "Any":
        """A torchmetrics MetricCollection; the head updates it from its predictions."""
        raise NotImplementedError

    def references(self) -> tuple[Reference, ...]:
        """Published numbers (and baselines) for the primary metric under these options."""
        return ()

    def uninformed_loss(self) -> float | None:
        """The mean loss of a model that learned nothing about the inputs (ln V nats for a
        softmax over V tokens guessing uniformly), or None. A run whose best checkpoint scores
        a validation or test loss more than 1% above it is recorded as diverged, whatever its
        first loss."""
        return None

    def baselines(self, splits: Splits) -> tuple[Baseline, ...]:
        """The task's trivial predictors, fitted on `splits.train` where they need fitting (the
        mean target, the unigram counts): see `Baseline`. Default: none declared (a leaderboard
        then says so)."""
        return ()

    def evaluate_model(self, model: nn.Module, split: Literal["val", "test"]) -> dict[str, float]:
        """Metrics computed from the whole model rather than batch by batch, e.g. free-running
        prediction that feeds the model's outputs back as inputs. The runner calls it after every
        validation and test pass (model in eval mode, no gradients) and records each value as
        `{split}/{name}`. `model` is the composed model: `model.embed`, `model.encoder`,
        `model.head`. Default: none."""
        return {}

    def sample(self, model: nn.Module, count: int, generator: torch.Generator) -> Tensor:
        """Draw `count` examples from a trained generative model, as images (count, C, H, W) with
        values in [0, 1] (`rnnbench sample` writes them as a PNG grid). A task that implements it
        sets `draws_images = True`. Default: not generative."""
        raise BenchmarkError(f"task '{self.name}' does not draw samples: `rnnbench sample` needs "
                             f"a generative image task such as binarized_fmnist")

    def encode(self, text: str) -> Tensor:
        """Text as the (P,) token ids the model reads (its prime, for `rnnbench sample`). A task
        that implements it and `decode` sets `generates_text = True`. Default: not a text task."""
        raise BenchmarkError(f"task '{self.name}' does not read text: sample text from a run of a "
                             f"language-model task such as ptb")

    def decode(self, ids: Tensor) -> str:
        """Token ids (N,) back as text, the inverse of `encode` up to unknown words."""
        raise BenchmarkError(f"task '{self.name}' does not write text: sample text from a run of "
                             f"a language-model task such as ptb")


@dataclass(frozen=True)
class Compatibility:
    ok: bool
    reason: str = ""


def compatibility(capabilities: Capabilities, requirements: Requirements,
                  decoder: Capabilities | None = None) -> Compatibility:
    """Whether an encoder with `capabilities` can serve a task with `requirements`, and why not.

    For an encoder-decoder task (`requirements.decoder`), `capabilities` are the source encoder's:
    any architecture that reads the structure qualifies, bidirectional included. The decoder
    (`decoder`, by default the same architecture) must meet `requirements.decoder`."""
    if requirements.structure not in capabilities.structures:
        return Compatibility(False, f"reads {'/'.join(capabilities.structures)}, "
                                    f"task gives {requirements.structure}")
    if requirements.causal and not capabilities.causal:
        return Compatibility(False, "not causal: it would see the future it must predict")
    if requirements.carries_state and not capabilities.carries_state:
        return Compatibility(False, "cannot carry state across batches")
    if requirements.decoder is not None:
        verdict = _decoder_compatibility(decoder or capabilities, requirements.decoder)
        if not verdict.ok and decoder is None:
            return Compatibility(False, f"it can encode but not decode ({verdict.reason}): choose a "
                                        f"decoder with task.decoder=NAME, a causal sequence "
                                        f"architecture that carries state (e.g. lstm)")
        if not verdict.ok:
            return Compatibility(False, f"the decoder {verdict.reason}: set task.decoder to a "
                                        f"causal sequence architecture that carries state (e.g. lstm)")
    return Compatibility(True)


def _decoder_compatibility(capabilities: Capabilities, requirements: Requirements) -> Compatibility:
    if requirements.structure not in capabilities.structures:
        return Compatibility(False, f"reads {'/'.join(capabilities.structures)}, not {requirements.structure}")
    if requirements.causal and not capabilities.causal:
        return Compatibility(False, "is not causal: it would see the tokens it must generate")
    if requirements.carries_state and not capabilities.carries_state:
        return Compatibility(False, "cannot carry state, and decoding runs it one step at a time")
    return Compatibility(True)


def undeclared(cls: type) -> list[str]:
    """What a plugin class leaves undeclared of its base's contract (`Architecture`: `build` and
    `capabilities`; `Task`: `input_spec`, `splits`, `build_head`, `metrics` and the class
    attributes a run reads), as lines naming the fix; empty when it is complete."""
    base = Architecture if issubclass(cls, Architecture) else Task
    methods = ("build",) if base is Architecture else ("input_spec", "splits", "build_head", "metrics")
    attributes = (("capabilities",) if base is Architecture
                  else ("requirements", "head_kind", "primary_metric", "direction"))
    problems = [f"implement `{name}` (see {base.__name__}.{name})" for name in methods
                if getattr(cls, name) is getattr(base, name)]
    problems += [f"set the class attribute `{name}`" for name in attributes if not hasattr(cls, name)]
    return problems


def sequence_output(outputs: Tensor, lengths: Tensor, state: Any) -> EncoderOutput:
    """A causal single-direction sequence encoder's `EncoderOutput` from its per-step outputs
    (B, T, O): zeros on padded steps, `final` the output at each item's last real step, `state`
    as given."""
    lengths = lengths.to(outputs.device)
    real = torch.arange(outputs.shape[1], device=outputs.device) < lengths.unsqueeze(1)
    last = outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]
    return EncoderOutput(torch.where(real.unsqueeze(-1), outputs, 0.0), last.unsqueeze(1), state)
