"""The README is the landing page: its Python runs and prints what it shows, its set-up commands are
the ones CI runs, its links point at pages that exist, and it stays a landing page."""
from __future__ import annotations

import os
import re

from docblocks import DOCS, README, ROOT, blocks, run_page

CI_COMMAND = 'python -m pip install ".[test]" && python -m pytest'


def _text() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_readme_python_blocks_run_and_print_what_the_readme_shows(tmp_path):
    ns, mismatches, printed = run_page(README, cwd=str(tmp_path))
    assert not mismatches, "README output block differs from what its code prints:\n" + mismatches[0].printed
    assert any(b.mark == "output" for b in blocks(README)), "the README shows no checked output"
    assert "Linear mixed model fit by REML ['lmerMod']" in printed
    assert ns["m"].nobs == 180


def test_readme_set_up_is_what_ci_runs():
    bash = [b.code for b in blocks(README) if b.lang == "bash"]
    assert any("python3 -m venv" in b for b in bash), "the set-up must make a virtual environment first"
    assert any(CI_COMMAND in b for b in bash)
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert CI_COMMAND in ci
    assert "mkdocs build --strict" in ci and '".[docs]"' in ci


def test_readme_links_resolve():
    for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _text()):
        if "://" in link:
            continue
        assert os.path.exists(os.path.join(ROOT, link)), f"README links to {link}, which does not exist"
        if link.startswith("docs/") and link.endswith(".md"):
            assert os.path.isfile(os.path.join(DOCS, os.path.relpath(link, "docs")))


def test_readme_is_a_landing_page():
    lines = _text().count("\n")
    assert 100 <= lines <= 180, f"README has {lines} lines; the manual belongs in docs/"
    for section in ("## Set-up", "## Example", "## Benchmarks", "## Documentation"):
        assert section in _text()
