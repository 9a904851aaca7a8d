"""S1-S3 of SCENARIOS.md reproduced from Python: runs examples/python/scenarios.py."""

from __future__ import annotations

import pathlib
import runpy

from conftest import needs_root

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "scenarios.py"


@needs_root
def test_scenarios_s1_s2_s3(capsys) -> None:  # type: ignore[no-untyped-def]
    mod = runpy.run_path(str(SCRIPT))
    assert mod["main"]() == 0
    out = capsys.readouterr().out
    assert "c1 (host1) pings c2 (host2): yes" in out
    assert "host1 pings c1 without a shim: no" in out
    assert "host1 pings c1 through the shim: yes" in out
    assert "S2:" in out
    assert "all results as the scenarios say" in out
