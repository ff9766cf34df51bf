from helpers import QUICK
from rnnbench.leaderboard import leaderboard_frames
from rnnbench.store import ResultStore
from rnnbench.sweep import plan, sweep


def test_a_sweep_runs_every_compatible_pair_per_seed_and_skips_completed_runs(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    planned = plan(["rnn", "bilstm"], ["copy", "adding"], [0, 1], QUICK, None)
    # bilstm cannot run copy: 3 pairs x 2 seeds
    assert len(planned) == 6
    assert ("bilstm", "copy") not in {(p.architecture, p.task) for p in planned}
    adding_runs = [item for item in planned if item.task == "adding"]
    outcomes = sweep(adding_runs, QUICK, None, store, progress=False)
    assert outcomes == {"completed": 4}
    assert sweep(adding_runs, QUICK, None, store, progress=False) == {"skipped": 4}

    tables = leaderboard_frames(store)
    assert set(tables) == {"adding"}
    adding = tables["adding"]
    assert set(adding.architecture) == {"rnn", "bilstm"}
    assert list(adding.seeds) == [2, 2]
    means = list(adding["mse (mean)"])
    assert means == sorted(means)                       # best (lowest mse) first
    assert adding["std"].notna().all()
    assert adding.budget.iloc[0].startswith("steps=6")
