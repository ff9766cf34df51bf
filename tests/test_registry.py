import pytest

from rnnbench.core import registry
from rnnbench.core.contracts import Capabilities, Requirements, compatibility
from rnnbench.core.errors import BenchmarkError


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
    assert registry.pair_compatibility(registry.get_architecture("bilstm"), registry.get_task("adding")).ok


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
    with pytest.raises(BenchmarkError, match="architecture name 'lstm' taken"):
        registry.register_architecture("lstm")(Impostor)


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "a|b", "=cmd()", "has space", "", "-lead",
                                  "x" * 65, "ünï", "a\nb"])
def test_a_name_that_is_not_plain_is_refused_with_the_fix(name):
    cls = type("Odd", (registry.get_architecture("lstm"),), {"__module__": "odd_plugin"})
    with pytest.raises(BenchmarkError, match="is not a plain name: use letters, digits, '_' and '-'"):
        registry.register_architecture(name)(cls)
    assert name not in registry.architectures()


# --------------------------------------------------------------------------- name clashes

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from types import SimpleNamespace  # noqa: E402


def _fake_distribution(site, dist: str, module: str, entry: str, source: str) -> None:
    """An installed distribution as importlib.metadata sees it: a .dist-info with entry points."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[rnnbench.architectures]\n{entry} = {module}\n")
    (info / "top_level.txt").write_text(f"{module}\n")
    (info / "RECORD").write_text(f"{module}.py,,\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))


CLASHING_PLUGIN = """
    from rnnbench import Architecture, Capabilities, register_architecture

    @register_architecture("gru")          # taken by the in-tree fused GRU
    class GRU(Architecture):               # same class name as the in-tree one, too
        capabilities = Capabilities(causal=True, structures=("sequence",))

        def build(self, input_size, hidden_size, options):
            raise NotImplementedError("never built here")

    @register_architecture("fresh")        # a free name: still registered
    class Fresh(Architecture):
        capabilities = Capabilities(causal=True, structures=("sequence",))

        def build(self, input_size, hidden_size, options):
            raise NotImplementedError("never built here")
"""


def test_an_outside_plugin_taking_an_in_tree_name_is_skipped_and_reported_naming_both(tmp_path):
    site = tmp_path / "site"
    _fake_distribution(site, "rnnbench-clash", "rnnbench_clash", "clash", CLASHING_PLUGIN)
    script = textwrap.dedent("""
        import json
        from rnnbench.core import registry
        archs = registry.architectures()
        print(json.dumps({"names": sorted(archs), "gru": archs["gru"].__module__,
                          "errors": registry.load_errors(),
                          "taken": registry.names_taken()}))
    """)
    # PYTHONPATH comes before site-packages: the outside entry point is found first
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {"rnn", "gru", "lstm", "bilstm", "fresh"} <= set(seen["names"])
    assert seen["gru"] == "rnnbench.plugins.fused_rnn"
    assert seen["errors"] == {}   # it loaded: its name was taken
    error = seen["taken"]["rnnbench.architectures:clash"]
    assert "architecture name 'gru' taken" in error
    assert "package 'rnnbench'" in error and "package 'rnnbench-clash'" in error
    assert "rnnbench.plugins.fused_rnn.GRU" in error and "rnnbench_clash.GRU" in error


@pytest.fixture
def fresh_registry(monkeypatch):
    """An empty registry whose entry points the test chooses; restored afterwards."""
    for table in ("_architectures", "_tasks", "_origins", "_load_errors", "_names_taken"):
        monkeypatch.setattr(registry, table, {})
    monkeypatch.setattr(registry, "_loaded", False)
    return registry


def _module_class(module: str, qualname: str = "GRU"):
    return type(qualname, (registry.Architecture,), {
        "__module__": module, "__qualname__": qualname, "build": lambda self, *sizes: None,
        "capabilities": Capabilities(causal=True, structures=("sequence",))})


def test_a_plugin_class_missing_its_contract_is_refused_at_registration_naming_the_fix(fresh_registry):
    incomplete = type("Half", (registry.Architecture,), {"__module__": "halfway"})
    with pytest.raises(BenchmarkError, match=r"'half' \(halfway.Half\) is incomplete: implement `build` "
                                             r"\(see Architecture.build\); set the class attribute `capabilities`"):
        registry.register_architecture("half")(incomplete)
    task = type("NoHead", (registry.Task,), {"__module__": "halfway", "requirements": Requirements("sequence"),
                                             "head_kind": "classification", "primary_metric": "accuracy",
                                             "direction": "max", "input_spec": lambda self: None,
                                             "splits": lambda self, size, seed: None,
                                             "metrics": lambda self: None})
    with pytest.raises(BenchmarkError, match=r"task 'nohead' \(halfway.NoHead\) is incomplete: implement `build_head`"):
        registry.register_task("nohead")(task)
    assert "half" not in registry._architectures and "nohead" not in registry._tasks


def test_an_in_tree_plugin_replaces_an_outsider_imported_before_it(fresh_registry):
    outsider, in_tree = _module_class("someone_elses_plugin"), _module_class("rnnbench.plugins.fused_rnn")
    registry.register_architecture("gru")(outsider)
    registry.register_architecture("gru")(in_tree)
    assert registry._architectures["gru"] is in_tree
    (key, error), = registry._names_taken.items()
    assert key == "rnnbench.architectures:someone_elses_plugin"
    assert "name 'gru' taken" in error and "someone_elses_plugin.GRU" in error
    assert "rnnbench.plugins.fused_rnn.GRU" in error


def test_two_classes_with_the_same_class_name_do_not_replace_each_other(fresh_registry):
    first, second = _module_class("plugin_one", "Cell"), _module_class("plugin_two", "Cell")
    registry.register_architecture("cell")(first)
    with pytest.raises(BenchmarkError, match="'cell' taken.*plugin_one.Cell.*plugin_two.Cell"):
        registry.register_architecture("cell")(second)
    assert registry._architectures["cell"] is first


def test_a_clash_while_loading_skips_only_the_clashing_class(fresh_registry, monkeypatch):
    registry.register_architecture("gru")(_module_class("rnnbench.plugins.fused_rnn"))

    def load_outsider():
        registry.register_architecture("gru")(_module_class("outside_plugin"))
        registry.register_architecture("other")(_module_class("outside_plugin", "Other"))

    entry = SimpleNamespace(name="outside", group=registry.ARCHITECTURE_GROUP, value="outside_plugin",
                            dist=SimpleNamespace(name="rnnbench-outside"), load=load_outsider)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [entry] if group == registry.ARCHITECTURE_GROUP else [])
    assert set(registry.architectures()) == {"gru", "other"}
    assert registry.architectures()["gru"].__module__ == "rnnbench.plugins.fused_rnn"
    assert registry.load_errors() == {}
    error = registry.names_taken()["rnnbench.architectures:outside"]
    assert "package 'rnnbench-outside'" in error and "name 'gru' taken" in error


def test_an_unknown_name_mentions_the_plugins_that_failed_to_load(fresh_registry, monkeypatch):
    def broken():
        raise ImportError("no module named 'torch_extra'")

    entry = SimpleNamespace(name="fancy", group=registry.ARCHITECTURE_GROUP, value="fancy_plugin",
                            dist=SimpleNamespace(name="rnnbench-fancy"), load=broken)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [entry] if group == registry.ARCHITECTURE_GROUP else [])
    with pytest.raises(BenchmarkError, match=r"unknown architecture 'lstm'.*failed to load.*"
                                             r"rnnbench.architectures:fancy.*torch_extra"):
        registry.get_architecture("lstm")


def test_commands_say_which_outside_plugin_lost_its_name(fresh_registry, monkeypatch, capsys):
    from rnnbench import cli

    def load_outsider():
        registry.register_architecture("gru")(_module_class("outside_plugin"))

    in_tree = SimpleNamespace(name="fused_rnn", group=registry.ARCHITECTURE_GROUP, value="rnnbench.plugins.fused_rnn",
                              dist=SimpleNamespace(name="rnnbench"),
                              load=lambda: registry.register_architecture("gru")(
                                  _module_class("rnnbench.plugins.fused_rnn")))
    outside = SimpleNamespace(name="outside", group=registry.ARCHITECTURE_GROUP, value="outside_plugin",
                              dist=SimpleNamespace(name="rnnbench-outside"), load=load_outsider)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [outside, in_tree] if group == registry.ARCHITECTURE_GROUP else [])
    assert cli.main(["list", "architectures"]) == 0
    err = capsys.readouterr().err
    assert "entry point rnnbench.architectures:outside skipped: architecture name 'gru' taken" in err
    assert "failed to load" not in err
