"""The tests need nothing outside the repository.

Every reference value lives in tests/reference/ next to the script that made it, and no test or
package module reads a folder beside or above the checkout (such as ../shared). `.ci/run` backs this
up at run time: it clones the committed HEAD into an empty temporary folder and runs the README's
commands there, in a fresh virtual environment.
"""
from __future__ import annotations

import ast
import json
import pathlib
import re

import conftest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
REFERENCE = TESTS / "reference"
THIS = pathlib.Path(__file__).resolve()
OUTSIDE = re.compile(r"(^|[/\\])shared([/\\]|$)|MIXEDFX_" + "SHARED")    # the old ../shared folder and its variable


def _python_files():
    yield from sorted(p for p in TESTS.rglob("*.py") if p.resolve() != THIS)
    yield from sorted((ROOT / "src").rglob("*.py"))


def _is_file_dir(node) -> bool:
    """os.path.dirname(__file__) or os.path.dirname(os.path.abspath(__file__))."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dirname"
            and len(node.args) == 1):
        return False
    arg = node.args[0]
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr in ("abspath", "realpath"):
        arg = arg.args[0] if arg.args else None
    return isinstance(arg, ast.Name) and arg.id == "__file__"


def _docstrings(tree) -> set[int]:
    """ids of docstring nodes (prose, not paths that are read)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_test_or_module_names_a_folder_outside_the_repository():
    problems = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = path.relative_to(ROOT)
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose
                    and OUTSIDE.search(node.value)):
                problems.append(f"{rel}:{node.lineno}: {node.value!r}")
            # os.path.join(os.path.dirname(__file__), "..", ...) must stay inside the checkout
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
                    and node.args and _is_file_dir(node.args[0])
                    and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[1:])):
                target = path.parent.joinpath(*(a.value for a in node.args[1:])).resolve()
                if not target.is_relative_to(ROOT):
                    problems.append(f"{rel}:{node.lineno}: reads {target}, outside the repository")
    assert not problems, "tests must read only files in the repository:\n" + "\n".join(problems)


def test_lme4_reference_folder_is_in_the_repository():
    ref_dir = pathlib.Path(conftest.REFERENCE_DIR).resolve()
    assert ref_dir == REFERENCE / "lme4"
    assert len(conftest.reference_ids("lmer")) == 10 and len(conftest.reference_ids("glmer")) == 5


def test_every_reference_file_has_the_script_that_made_it():
    scripts = {p.name: p.read_text() for p in REFERENCE.glob("make_*.R")}
    orphans = [j.name for j in REFERENCE.glob("*.json") if not any(j.name in text for text in scripts.values())]
    assert not orphans, f"reference JSON without a make_*.R naming it: {orphans}"
    # the 15 core lme4 models: exactly the ids make_lme4_core.R fits, each file named by its id
    made = set(re.findall(r'spec\("([A-Za-z0-9_]+)"', scripts["make_lme4_core.R"]))
    files = {j.stem for j in (REFERENCE / "lme4").glob("*.json")}
    assert made == files and len(files) == 15
    for j in (REFERENCE / "lme4").glob("*.json"):
        assert json.loads(j.read_text())["id"] == j.stem


def test_ci_runs_the_readme_commands_in_a_fresh_clone():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "git clone" in ci and "mktemp -d" in ci and "python3 -m venv" in ci
    assert 'python -m pip install ".[test]" && python -m pytest' in ci
