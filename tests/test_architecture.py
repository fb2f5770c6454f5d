"""Imports flow one way: formula -> design -> core -> models -> (inference, diagnostics) -> plots -> results -> cli.

Results come last: the user-facing classes import the inference, diagnostics and plot
functions they expose as methods, so the import graph shows every real call.
"""
from __future__ import annotations

import ast
import pathlib

import mixedfx

PKG = pathlib.Path(mixedfx.__file__).parent
RANK = {"formula": 0, "design": 1, "core": 2, "families": 2, "models": 3, "inference": 4, "diagnostics": 4,
        "plots": 5, "results": 6, "cli": 7, "datasets": 0, "cluster": 6}
# core is below design in the numerics sense but must not use design or pandas;
# dask is optional: only the cluster stage imports it
FORBIDDEN = {"core": {"design", "pandas", "formula", "dask", "distributed"}, "formula": {"numpy", "pandas", "scipy"},
             "design": {"dask", "distributed"}, "models": {"dask", "distributed"}}


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:   # relative import: resolve against the package
                parts = path.relative_to(PKG).parts[:-1]
                base = list(parts[: len(parts) - (node.level - 1)])
                yield ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.module or ""
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name


def test_stage_imports_flow_one_way():
    problems = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).parts
        if len(rel) < 2 or rel[0] not in RANK:
            continue
        stage = rel[0]
        for mod in _imports(path):
            top = mod.split(".")[0]
            target = mod.split(".")[1] if top == "mixedfx" and "." in mod else top
            if target in RANK and target != stage and target != "datasets" and RANK[target] > RANK[stage]:
                problems.append(f"{'/'.join(rel)} imports {mod} (later stage)")
            if target in FORBIDDEN.get(stage, ()) or top in FORBIDDEN.get(stage, ()):
                problems.append(f"{'/'.join(rel)} imports {mod} (forbidden in {stage})")
    assert not problems, "\n".join(problems)


def test_files_stay_small():
    big = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if len(p.read_text().splitlines()) > 600]
    assert not big, big
