"""Our modern architectures against outside implementations on the package index, the same weights
copied into both (slow: `nox -s slow` installs the peers). Each test skips with the reason where
its peer is not installed.

- minGRU / minLSTM: `mingru-pytorch` (minGRU_pytorch), log-space parallel path and its own
  sequential step;
- LRU: `lru-pytorch` (LRU_pytorch), a per-step loop;
- Mamba: `mambapy` (MambaBlock), its own parallel scan.
Not compared: S4D, RG-LRU, DeltaNet, xLSTM and IndRNN, whose peers on the index need CUDA or
Triton (mamba-ssm, flash-linear-attention, xlstm's kernels) or do not exist as a CPU package.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from rnnbench import SequenceBatch
from rnnbench.core import registry

pytestmark = pytest.mark.slow

BATCH, STEPS, SIZE = 3, 16, 8


def _inputs(features: int = SIZE) -> torch.Tensor:
    return torch.randn(BATCH, STEPS, features, generator=torch.Generator().manual_seed(0))


def _ours(name: str, **options):
    architecture = registry.get_architecture(name)
    return architecture().build(SIZE, SIZE, architecture.Options(**options)).eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_min_rnn_equals_mingru_pytorch(cell):
    peers = pytest.importorskip("minGRU_pytorch", reason="pip install mingru-pytorch")
    if cell == "gru":
        peer = peers.minGRU(SIZE)
        ours = _ours("mingru")
        hidden, gate = peer.to_hidden_and_gate.weight.chunk(2)
        weight = torch.cat([gate, hidden])
    else:
        from minGRU_pytorch.minLSTM import minLSTM

        peer = minLSTM(SIZE)
        ours = _ours("minlstm")
        hidden, forget, input_gate = peer.to_hidden_and_f_i_gate.weight.chunk(3)
        weight = torch.cat([forget, input_gate, hidden])
    with torch.no_grad():
        ours.projection.weight.copy_(weight)
        ours.projection.bias.zero_()
    x = _inputs()
    expected, last = peer(x, return_next_prev_hidden=True)
    out = ours(SequenceBatch(x, torch.full((BATCH,), STEPS)))
    assert torch.allclose(out.outputs, expected, atol=1e-5, rtol=1e-4)
    # one more step from the carried state: the peer's sequential path
    step = torch.randn(BATCH, 1, SIZE)
    peer_step = peer(step, prev_hidden=last)
    ours_step = ours(SequenceBatch(step, torch.ones(BATCH, dtype=torch.long)), out.state)
    assert torch.allclose(ours_step.outputs, peer_step, atol=1e-5, rtol=1e-4)


def test_lru_equals_lru_pytorch():
    peers = pytest.importorskip("LRU_pytorch", reason="pip install lru-pytorch")
    peer = peers.LRU(SIZE, SIZE, SIZE, rmin=0.9, rmax=0.999, max_phase=0.314)
    ours = _ours("lru")
    with torch.no_grad():
        for name in ("nu_log", "theta_log", "gamma_log"):
            getattr(ours, name).copy_(getattr(peer, name))
        ours.input_real.copy_(peer.B.real), ours.input_imag.copy_(peer.B.imag)
        ours.output_real.copy_(peer.C.real), ours.output_imag.copy_(peer.C.imag)
        ours.skip.weight.copy_(peer.D)
    x = _inputs()
    with torch.no_grad():
        expected = F.gelu(peer(x))          # our block applies the paper's GELU after the layer
    out = ours(SequenceBatch(x, torch.full((BATCH,), STEPS)))
    assert torch.allclose(out.outputs, expected, atol=1e-5, rtol=1e-4)


def test_mamba_equals_mambapy():
    mamba = pytest.importorskip("mambapy.mamba", reason="pip install mambapy")
    config = mamba.MambaConfig(d_model=SIZE, n_layers=1)
    peer = mamba.MambaBlock(config).eval()
    ours = _ours("mamba")
    with torch.no_grad():
        ours.in_projection.weight.copy_(peer.in_proj.weight)
        ours.in_projection.bias.zero_()
        for mine, theirs in ((ours.conv, peer.conv1d), (ours.x_projection, peer.x_proj),
                             (ours.dt_projection, peer.dt_proj)):
            for name, parameter in mine.named_parameters():
                parameter.copy_(getattr(theirs, name))
        ours.a_log.copy_(peer.A_log), ours.skip.copy_(peer.D)
        ours.out_projection.weight.copy_(peer.out_proj.weight)
        ours.out_projection.bias.zero_()
        x = _inputs()
        expected = peer(x)
        out = ours(SequenceBatch(x, torch.full((BATCH,), STEPS)))
    assert torch.allclose(out.outputs, expected, atol=1e-5, rtol=1e-4)
