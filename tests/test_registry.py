import pytest

from rnnbench import registry
from rnnbench.contracts import Capabilities, Requirements, compatibility
from rnnbench.errors import BenchmarkError


def test_in_tree_plugins_are_registered_through_entry_points():
    assert {"rnn", "gru", "lstm", "bilstm"} <= set(registry.architectures())
    assert {"copy", "adding"} <= set(registry.tasks())
    assert registry.load_errors() == {}


def test_unknown_names_suggest_the_closest():
    with pytest.raises(BenchmarkError, match="Did you mean 'lstm'"):
        registry.get_architecture("lstn")
    with pytest.raises(BenchmarkError, match="Did you mean 'copy'"):
        registry.get_task("cpy")


def test_a_bidirectional_encoder_cannot_serve_a_causal_task():
    verdict = registry.pair_compatibility(registry.get_architecture("bilstm"), registry.get_task("copy"))
    assert not verdict.ok and "causal" in verdict.reason
    assert ("bilstm", "copy") not in registry.compatible_pairs()
    assert ("bilstm", "adding") in registry.compatible_pairs()


@pytest.mark.parametrize("caps, needs, ok", [
    (Capabilities(causal=True, structures=("sequence",)), Requirements("grid"), False),
    (Capabilities(causal=True, structures=("tree", "sequence")), Requirements("sequence"), True),
    (Capabilities(causal=True, structures=("sequence",), carries_state=False),
     Requirements("sequence", causal=True, carries_state=True), False),
])
def test_compatibility_follows_the_declarations(caps, needs, ok):
    assert compatibility(caps, needs).ok is ok


def test_registering_a_different_class_under_a_taken_name_is_refused():
    class Impostor(registry.get_architecture("lstm")):
        pass
    with pytest.raises(BenchmarkError, match="registered twice"):
        registry.register_architecture("lstm")(Impostor)
