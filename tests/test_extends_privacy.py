"""`extends:` may point at any file a user can read, so an error in an extended file must
name the place and at most the one value at fault: never the file's other contents."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_spec_safety import GOOD, cli

BASE = GOOD + "description: SECRET-DESCRIPTION\nx-token: SECRET-X-KEY\n"

# (a line added to the extended file, the text of the value at fault that may appear)
FAULTS = [
    ("settings: FAULT-SETTINGS", "FAULT-SETTINGS"),
    ("sweep: {methods.train.steps: FAULT-SWEEP}", "FAULT-SWEEP"),
    ("expect: [{metric: accuracy, at_least: FAULT-BOUND}]", "FAULT-BOUND"),
    ("cells: {only: FAULT-CELLS}", "FAULT-CELLS"),
    ("unknown_key: FAULT-UNKNOWN", ""),
    ("password: SECRET-PW: not yaml", ""),
]


@pytest.mark.parametrize(("line", "at_fault"), FAULTS, ids=[f[0].split(":")[0] for f in FAULTS])
def test_an_error_in_an_extended_file_echoes_no_other_value(tmp_path: Path, line: str,
                                                            at_fault: str) -> None:
    (tmp_path / "base.yaml").write_text(BASE + line + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("extends: base.yaml\nname: child\n")
    code, out = cli("validate", str(spec))
    assert code == 2, out
    assert "base.yaml" in out and "Traceback" not in out
    assert "SECRET" not in out, out  # no value of another key of the extended file
    if at_fault:
        assert at_fault in out, out


def test_a_file_that_is_not_a_spec_is_not_echoed(tmp_path: Path) -> None:
    for text in ("[section]\nSECRET_INI=1\n", "user: a\npassword: SECRET-PW: x\n",
                 "SECRET-LINE one\nSECRET-LINE two\n"):
        (tmp_path / "creds.txt").write_text(text)
        spec = tmp_path / "spec.yaml"
        spec.write_text("extends: creds.txt\nname: child\n")
        code, out = cli("validate", str(spec))
        assert code == 2 and "creds.txt" in out, out
        assert "SECRET" not in out, out
