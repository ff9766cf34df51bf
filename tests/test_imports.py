"""`rnnbench list` and `rnnbench --help` stay quick: they load every plugin and task module through
the registry, so no module on that path may import the heavy training and metric libraries at
module level (they are imported where a run needs them). torch itself may be imported.
"""

import subprocess
import sys
import textwrap

HEAVY = ("pytorch_lightning", "lightning_fabric", "torchmetrics", "pandas")


def test_list_and_help_do_not_import_the_heavy_libraries():
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from rnnbench import cli
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(['list'])
            try:
                cli.main(['--help'])
            except SystemExit:
                pass
        print('imported:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("imported:"), result.stdout[-2000:]
    imported = [m for m in last.removeprefix("imported:").split(",") if m]
    assert not imported, (f"`rnnbench list` / `rnnbench --help` imported {', '.join(imported)} "
                          f"(none of {', '.join(HEAVY)} may be imported there)")
