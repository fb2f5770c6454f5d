"""Every docs page's Python runs as written, prints what the page shows, and draws the figures it shows.

The rules for marking blocks are in :mod:`docblocks`.  The site itself is built by
``mkdocs build --strict`` in ``.ci/run``; the checks here that need no mkdocs (nav, API targets)
fail early, in the test run.
"""
from __future__ import annotations

import difflib
import importlib
import os
import re

import pytest

from docblocks import DOCS, IMAGE, ROOT, blocks, pages, run_page

PAGES = pages()
CODE_PAGES = [p for p in PAGES if any(b.runs for b in blocks(os.path.join(DOCS, p)))]


def _read(page: str) -> str:
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        return f.read()


def test_the_docs_have_runnable_pages():
    for page in ("getting-started.md", "tutorial.md", "coming-from-lme4.md", "coming-from-statsmodels.md"):
        assert page in CODE_PAGES, f"{page} has no python block that runs"


@pytest.mark.parametrize("page", CODE_PAGES)
def test_page_code_runs_and_prints_what_the_page_shows(page, tmp_path):
    _, mismatches, _ = run_page(os.path.join(DOCS, page), cwd=str(tmp_path))
    report = []
    for mm in mismatches:
        diff = difflib.unified_diff(mm.expected.strip("\n").split("\n"), mm.printed.strip("\n").split("\n"),
                                    "page", "printed", lineterm="")
        report.append(f"docs/{page}:{mm.block.line}: output block differs from what the code prints\n"
                      + "\n".join(diff))
    assert not report, "\n\n".join(report) + "\n(python tests/docs/docblocks.py --outputs rewrites them)"
    for path in IMAGE.findall(_read(page)):
        name = os.path.basename(path)
        assert (tmp_path / name).is_file(), f"docs/{page} shows {path}, but its code does not draw {name}"
        assert os.path.isfile(os.path.join(DOCS, path)), \
            f"docs/{path} is missing (python tests/docs/docblocks.py --figures)"


def test_every_committed_figure_is_shown_and_drawn_by_a_page():
    shown = {os.path.basename(p) for page in PAGES for p in IMAGE.findall(_read(page))}
    committed = set(os.listdir(os.path.join(DOCS, "img")))
    assert committed == shown, f"figures in docs/img not shown by any page: {sorted(committed - shown)}; " \
                               f"shown but missing: {sorted(shown - committed)}"
    drawn = set()
    for page in CODE_PAGES:
        code = "".join(b.code for b in blocks(os.path.join(DOCS, page)) if b.runs)
        drawn |= set(re.findall(r'savefig\("([^"]+)"', code))
    assert shown <= drawn


def test_nav_lists_every_page_and_only_existing_ones():
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as f:
        config = f.read()
    nav = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.M))
    assert nav == set(PAGES)


def test_api_reference_targets_exist():
    targets = [t for page in PAGES for t in re.findall(r"^::: ([\w.]+)\s*$", _read(page), re.M)]
    assert len(targets) >= 20
    for target in targets:
        module, _, name = target.rpartition(".")
        try:
            obj = importlib.import_module(target)
        except ImportError:
            obj = getattr(importlib.import_module(module), name, None)
        assert obj is not None, f"the API reference documents {target}, which does not exist"
        assert (getattr(obj, "__doc__", None) or "").strip(), f"{target} has no docstring"


def test_pages_link_to_pages_that_exist():
    for page in PAGES:
        for link in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", _read(page)):
            target = os.path.normpath(os.path.join(os.path.dirname(page), link))
            assert target in PAGES, f"docs/{page} links to {link}, which is not a page"
