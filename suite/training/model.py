"""The composed model: input embedding/projection + an architecture's encoder + a task's head,
and the choice of hidden size that matches a parameter budget."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import nn

from rnnbench.core import registry
from rnnbench.training.config import RunConfig
from rnnbench.core.contracts import (Architecture, Batch, DecoderParts, Encoder, EncoderOutput, GridBatch,
                                Inputs, Task, compatibility)
from rnnbench.core.errors import BenchmarkError
from rnnbench.toolkit.heads import HeadOutput


class BenchmarkModel(nn.Module):
    """embedding (token inputs only) -> encoder -> head."""

    def __init__(self, embedding: nn.Embedding | None, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.embedding, self.encoder, self.head = embedding, encoder, head

    def embed(self, inputs: Inputs) -> Inputs:
        if self.embedding is None or isinstance(inputs, GridBatch):
            return inputs
        return dataclasses.replace(inputs, values=self.embedding(inputs.values))

    def forward(self, batch: Batch, state: Any = None) -> tuple[HeadOutput, EncoderOutput]:
        encoded = self.encoder(self.embed(batch.inputs), state)
        return self.head(encoded, batch), encoded


def _input_size(task: Task, config: RunConfig, hidden_size: int) -> tuple[int, int | None]:
    """(encoder input size, vocabulary size or None for feature inputs)."""
    spec = task.input_spec()
    if spec.vocab_size is not None:
        return config.model.embedding_size or hidden_size, spec.vocab_size
    if spec.features is not None:
        return spec.features, None
    raise BenchmarkError(f"task '{task.name}' declares neither a vocabulary nor input features")


def decoder_architecture(architecture: type[Architecture] | Architecture, task: type[Task] | Task,
                         config: RunConfig) -> tuple[Architecture, Any] | None:
    """(decoder architecture, its options) for an encoder-decoder task, else None.

    The decoder is the architecture the task's `decoder` option names, or the encoder's own when
    it names none; it runs with the encoder's options when it is the same architecture, else with
    its own defaults. Raises a BenchmarkError naming the fix when it cannot decode."""
    if task.requirements.decoder is None:
        return None
    name = getattr(config.task_options, "decoder", None)
    decoder_cls = registry.get_architecture(name) if name is not None else type(architecture) \
        if isinstance(architecture, Architecture) else architecture
    verdict = compatibility(architecture.capabilities, task.requirements,
                            decoder_cls.capabilities if name is not None else None)
    if not verdict.ok:
        chosen = f"task.decoder={name}" if name is not None else f"'{decoder_cls.name}' alone"
        raise BenchmarkError(f"'{task.name}' cannot run with {chosen}: {verdict.reason}")
    options = config.arch_options if decoder_cls.name == config.architecture else decoder_cls.Options()
    return decoder_cls(), options


def _decoder_parts(architecture: Architecture, task: Task, config: RunConfig, hidden_size: int,
                   embedding_size: int, context_size: int) -> DecoderParts | None:
    """The target embedding and the decoder of an encoder-decoder task, built for inputs of the
    target embedding concatenated with the context vector (`DecoderParts`)."""
    chosen = decoder_architecture(architecture, task, config)
    if chosen is None:
        return None
    decoder_arch, options = chosen
    target_vocab = task.input_spec().target_vocab_size
    if target_vocab is None:
        raise BenchmarkError(f"task '{task.name}' declares a decoder but no target vocabulary: set "
                             f"InputSpec(target_vocab_size=...) in its input_spec")
    decoder = decoder_arch.build(embedding_size + context_size, hidden_size, options)
    return DecoderParts(nn.Embedding(target_vocab, embedding_size), decoder, context_size)


def _head(task: Task, encoder_output_size: int, embedding: nn.Embedding | None,
          decoder: DecoderParts | None) -> nn.Module:
    return task.build_head(encoder_output_size, embedding, decoder)


def build_model(architecture: Architecture, task: Task, config: RunConfig, hidden_size: int) -> BenchmarkModel:
    input_size, vocab_size = _input_size(task, config, hidden_size)
    embedding = nn.Embedding(vocab_size, input_size) if vocab_size is not None else None
    encoder = architecture.build(input_size, hidden_size, config.arch_options)
    declared = architecture.output_size(hidden_size)
    if encoder.output_size != declared:
        raise BenchmarkError(f"architecture '{architecture.name}' declares output size {declared} "
                             f"but its encoder has {encoder.output_size}: fix the plugin")
    decoder = _decoder_parts(architecture, task, config, hidden_size, input_size, encoder.output_size)
    head = _head(task, encoder.output_size, embedding, decoder)
    return BenchmarkModel(embedding, encoder, head)


def check_initialisation(architecture: type[Architecture], task: type[Task], config: RunConfig) -> None:
    """Refuse, before anything is built, an initialisation setting (`ModelSettings.forget_bias`,
    `ModelSettings.recurrent_init`) that the architecture, or the decoder of an encoder-decoder
    task, does not declare (`Capabilities.forget_gate`, `Capabilities.recurrent_matrices`)."""
    roles = [("", architecture, config.arch_options)]
    chosen = decoder_architecture(architecture, task, config)
    if chosen is not None and type(chosen[0]) is not architecture:
        roles.append(("the decoder ", type(chosen[0]), chosen[1]))
    for role, arch, options in roles:
        choose = "an LSTM decoder (task.decoder=lstm)" if role else "an LSTM architecture"
        if config.model.forget_bias is not None and not arch.capabilities.forget_gate:
            raise BenchmarkError(f"arch.forget_bias sets forget-gate biases (the LSTM family: lstm, "
                                 f"bilstm, deep_rnn with arch.cell=lstm), and {role}'{arch.name}' "
                                 f"has no forget gate (Capabilities.forget_gate): choose {choose} "
                                 f"or drop arch.forget_bias")
        if config.model.recurrent_init == "orthogonal" and not arch.capabilities.recurrent_matrices:
            raise BenchmarkError(f"arch.recurrent_init=orthogonal draws trained square recurrent "
                                 f"matrices, and {role}'{arch.name}' declares none "
                                 f"(Capabilities.recurrent_matrices; a fixed reservoir, as esn's, is "
                                 f"never trained): use arch.recurrent_init=default")
        if config.model.forget_bias is not None or config.model.recurrent_init != "default":
            with torch.device("meta"):   # what these options build lists them (nothing allocated)
                _check_declared(arch.name, arch().build(1, 1, options), config, options)


def _check_declared(name: str, encoder: Encoder, config: RunConfig, options: Any) -> None:
    """Refuse a setting whose tensors this encoder, as built with `options`, does not list
    (deep_rnn declares forget gates, but has them only with arch.cell=lstm)."""
    if config.model.forget_bias is not None and not encoder.forget_gate_biases():
        raise BenchmarkError(f"arch.forget_bias: '{name}' with {options} has no forget gate "
                             f"(deep_rnn has one with arch.cell=lstm): use an LSTM cell or drop "
                             f"arch.forget_bias")
    if config.model.recurrent_init == "orthogonal" and not encoder.recurrent_matrices():
        raise BenchmarkError(f"arch.recurrent_init=orthogonal: '{name}' with {options} lists no "
                             f"recurrent matrices: use arch.recurrent_init=default")


def _encoders(module: nn.Module) -> list[Encoder]:
    """The model's encoders (the source encoder, and a decoder), not looking inside them."""
    found: list[Encoder] = []
    for child in module.children():
        found.extend([child] if isinstance(child, Encoder) else _encoders(child))
    return found


def initialise(model: BenchmarkModel, config: RunConfig) -> None:
    """The initialisation settings, in this order, each overriding the parts it names:
    `optim.init_scale` (every weight U(-s, s)), `arch.recurrent_init=orthogonal` (every matrix
    of `Encoder.recurrent_matrices()`, per encoder), `arch.forget_bias` (`Encoder.forget_gate_biases()`:
    the k tensors of an entry set to b / k each, so that they sum to b). An encoder that lists
    nothing for a setting that is set is refused (a BenchmarkError naming it): nothing is ignored
    silently."""
    if config.optim.init_scale is not None:
        for parameter in model.parameters():
            nn.init.uniform_(parameter, -config.optim.init_scale, config.optim.init_scale)
    settings = config.model
    if settings.recurrent_init == "default" and settings.forget_bias is None:
        return
    with torch.no_grad():
        for encoder in _encoders(model):
            _check_declared(type(encoder).__name__, encoder, config, config.arch_options)
            if settings.recurrent_init == "orthogonal":
                for matrix in encoder.recurrent_matrices():
                    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
                        raise BenchmarkError(f"{type(encoder).__name__}.recurrent_matrices() gives a "
                                             f"{tuple(matrix.shape)} matrix; each must be square "
                                             f"(H, H): fix the plugin")
                    matrix.copy_(nn.init.orthogonal_(torch.empty(matrix.shape, dtype=matrix.dtype,
                                                                 device=matrix.device)))
            if settings.forget_bias is not None:
                for group in encoder.forget_gate_biases():
                    for part in group:
                        part.fill_(settings.forget_bias / len(group))


BYTES_PER_PARAMETER = 16  # float32 weight, its gradient, and Adam's two moments


def memory_bytes() -> tuple[int, str]:
    """(bytes, what) of the memory a run on this machine can use: the GPU's, else the RAM."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, "GPU memory"
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "RAM"


def check_model_fits(architecture: Architecture, task: Task, config: RunConfig, hidden_size: int) -> int:
    """Estimate the model's size without building it (`Architecture.estimate_parameters`), and
    refuse, with the estimate, a model whose weights, gradients and optimiser state would not fit
    in memory. Returns the estimated number of parameters and buffers."""
    input_size, vocab_size = _input_size(task, config, hidden_size)
    encoder = architecture.estimate_parameters(input_size, hidden_size, config.arch_options)
    with torch.device("meta"):
        embedding = nn.Embedding(vocab_size, input_size) if vocab_size is not None else None
        context_size = architecture.output_size(hidden_size)
        decoder = _decoder_parts(architecture, task, config, hidden_size, input_size, context_size)
        head = _head(task, context_size, embedding, decoder)
        total = encoder + sum(p.numel() for p in {id(p): p for module in (embedding, head)
                                                  if module is not None
                                                  for p in module.parameters()}.values())
    needed = total * BYTES_PER_PARAMETER
    available, what = memory_bytes()
    if needed > available:
        raise BenchmarkError(
            f"the model would have about {total:.3g} parameters, about {needed / 2**30:,.1f} GiB "
            f"with gradients and optimiser state, more than the {available / 2**30:,.0f} GiB of "
            f"{what} here: lower arch.hidden_size, arch.num_layers or arch.params")
    return total


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters; a tied weight counts once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def count_fixed_weights(model: nn.Module) -> int:
    """Nonzero entries of the weights the model's encoders use but never train
    (`Encoder.fixed_weights`: an echo-state reservoir), the decoder's included."""
    return sum(int(torch.count_nonzero(weight)) for module in model.modules() if isinstance(module, Encoder)
               for weight in module.fixed_weights())


def hidden_size_for_budget(architecture: Architecture, task: Task, config: RunConfig, budget: int,
                           tolerance: float = 0.05) -> int:
    """The hidden size whose model has closest to `budget` parameters (built on the meta device,
    so nothing is allocated); raise if no size comes within `tolerance`."""
    def size(hidden: int) -> int:
        with torch.device("meta"):
            return count_parameters(build_model(architecture, task, config, hidden))

    low, high = 1, 1
    while size(high) < budget:
        low, high = high, high * 2
        if high > 1 << 16:
            raise BenchmarkError(f"no hidden size reaches {budget} parameters: lower --params")
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) < budget else (low, middle)
    best = min((low, high), key=lambda hidden: abs(size(hidden) - budget))
    achieved = size(best)
    if abs(achieved - budget) > tolerance * budget:
        raise BenchmarkError(f"'{architecture.name}' on '{task.name}' cannot match {budget} "
                             f"parameters within {tolerance:.0%} (closest: {achieved} at hidden size "
                             f"{best}); choose a larger --params or set arch.hidden_size instead")
    return best


def initial_model(architecture: Architecture, task: Task, config: RunConfig,
                  seed: int) -> tuple[BenchmarkModel, int]:
    """(model, hidden size) exactly as a run with this seed starts training: seeded, sized to the
    parameter budget if there is one, and initialised."""
    import pytorch_lightning as pl   # here: planning a sweep resolves models' sizes without Lightning

    pl.seed_everything(seed, workers=True, verbose=False)
    if config.model.params:
        check_model_fits(architecture, task, config, hidden_size=1)  # the budget search builds models
        hidden_size = hidden_size_for_budget(architecture, task, config, config.model.params)
    else:
        hidden_size = config.model.hidden_size
    check_model_fits(architecture, task, config, hidden_size)
    model = build_model(architecture, task, config, hidden_size)
    initialise(model, config)   # optim.init_scale, arch.recurrent_init, arch.forget_bias
    return model, hidden_size
