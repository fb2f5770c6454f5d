"""The README's Python blocks run as written, and its printed summary is what the code prints."""
from __future__ import annotations

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def _blocks(kind: str) -> list[str]:
    with open(README) as f:
        return re.findall(rf"```{kind}\n(.*?)```", f.read(), re.S)


def test_readme_python_blocks_run(capsys, tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)          # the tour writes fit.html
    ns: dict = {}
    with pytest.warns(UserWarning, match="refitting model"):   # the tour's anova() says it refits by ML
        for block in _blocks("python"):
            code = "\n".join(line for line in block.splitlines() if "# raises" not in line)
            exec(compile(code, "README.md", "exec"), ns)
    shown = _blocks("text")[0]
    printed = capsys.readouterr().out
    assert printed.strip().startswith(shown.strip()), "README summary block differs from print(m.summary())"
    assert "['glmerMod']" in printed                  # the GLMM tour ran and printed its summary
    assert 0.0 < ns["shrink"].min() < ns["shrink"].max() < 1.0
    assert (tmp_path / "fit.html").read_text().startswith("<!DOCTYPE html>")


def test_readme_shell_commands_are_the_ci_commands():
    with open(os.path.join(os.path.dirname(README), ".ci", "run")) as f:
        ci = f.read()
    bash = _blocks("bash")
    assert any('python -m pip install ".[test]" && python -m pytest' in b for b in bash)
    assert 'python -m pip install ".[test]" && python -m pytest' in ci
