"""The conformance kit against deliberately broken encoders: each check must catch what it is
for. (The kit over every registered architecture and its option variants runs once, in
tests/test_architectures.py.)"""

import pytest
import torch
from torch import nn

from rnnbench.conformance import ConformanceError, check_architecture, conformance_checks
from rnnbench.contracts import Architecture, Capabilities, Encoder, EncoderOutput


class _Correct(Encoder):
    """A packed GRU that honours the contract; the broken encoders each break one thing."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)
        self.output_size = hidden_size

    def forward(self, inputs, state=None):
        packed = nn.utils.rnn.pack_padded_sequence(inputs.values, inputs.lengths, batch_first=True,
                                                   enforce_sorted=False)
        outputs, last = self.rnn(packed, state)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True,
                                                      total_length=inputs.values.shape[1])
        return EncoderOutput(outputs, last.transpose(0, 1), last)


class LeaksPadding(_Correct):
    """Runs the padded batch unpacked: padding steps update the state."""

    def forward(self, inputs, state=None):
        outputs, last = self.rnn(inputs.values, state)
        return EncoderOutput(outputs, outputs[:, -1:], last)


class LeaksFuture(_Correct):
    """Adds the next step's output to every output (padding stays invariant: padded outputs are 0)."""

    def forward(self, inputs, state=None):
        result = super().forward(inputs, state)
        following = torch.cat([result.outputs[:, 1:], torch.zeros_like(result.outputs[:, :1])], dim=1)
        return result._replace(outputs=result.outputs + following)


class IgnoresState(_Correct):
    """Drops the state it is given."""

    def forward(self, inputs, state=None):
        return super().forward(inputs, None)


def _architecture(encoder_class, causal=True):
    class Wrapped(Architecture):
        capabilities = Capabilities(causal=causal, structures=("sequence",))
        name = encoder_class.__name__

        def build(self, input_size, hidden_size, options):
            return encoder_class(input_size, hidden_size)
    return Wrapped


def _run_check(architecture, check_name):
    [check] = [c for c in conformance_checks(architecture) if c.name == f"sequence:{check_name}"]
    check.run()


def test_a_correct_encoder_passes_everything():
    check_architecture(_architecture(_Correct))


@pytest.mark.parametrize("broken, check_name", [
    (LeaksPadding, "padding_invariance"),
    (LeaksFuture, "causality"),
    (IgnoresState, "carried_state"),
])
def test_broken_encoders_are_caught(broken, check_name):
    with pytest.raises(ConformanceError):
        _run_check(_architecture(broken), check_name)
    with pytest.raises(ConformanceError, match=check_name):
        check_architecture(_architecture(broken))


def test_a_wrong_declared_output_size_is_caught():
    class Doubles(_architecture(_Correct)):
        def output_size(self, hidden_size):
            return 2 * hidden_size
    with pytest.raises(ConformanceError, match="declares"):
        _run_check(Doubles, "shapes")
