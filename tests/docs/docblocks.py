"""Run the code blocks of the README and the docs pages, as a reader would.

Rules for a Markdown page (README.md or docs/**/*.md):

* Every fenced ``python`` block runs, in page order, in one namespace per page, with the working
  directory set by the caller (figures a page saves land there).
* Blocks of any other language (``text``, ``bash``, ...) do not run.
* An HTML comment ``<!-- docs: no-run -->`` on the line before a fence keeps that python block
  from running (use it sparingly: for code that needs something a test cannot have).
* ``<!-- docs: output -->`` on the line before a fence marks that block as the printed output of
  the python blocks since the previous output block; the test compares it with what they print
  (trailing spaces and leading/trailing blank lines aside).
* A line whose comment starts with ``# raises`` (``m.predict(new)  # raises DesignError: ...``)
  runs on its own and must raise; the word after ``raises``, if it is a name, must be the class
  of the exception or one of its bases.

``python tests/docs/docblocks.py --figures`` reruns every docs page in a temporary folder and copies
the figures the page shows (``![...](img/NAME.png)``, saved by its code as ``NAME.png``) to
``docs/img``, so the committed figures are the ones the pages' code draws; ``--outputs`` rewrites the
output blocks with what the code prints now (review the diff before committing it).  Name pages
(``docs/tutorial.md``) to limit either to them.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCS = os.path.join(ROOT, "docs")
README = os.path.join(ROOT, "README.md")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARK = re.compile(r"^\s*<!--\s*docs:\s*(?P<mark>[a-z-]+)\s*-->\s*$")
_RAISES = re.compile(r"#\s*raises\b\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)?")
IMAGE = re.compile(r"!\[[^\]]*\]\((?P<path>img/[^)\s]+)\)")


@dataclass
class Block:
    lang: str
    code: str
    line: int           # 1-based line of the opening fence
    end: int            # 1-based line of the closing fence
    mark: str | None    # "no-run", "output" or None

    @property
    def runs(self) -> bool:
        return self.lang == "python" and self.mark != "no-run"


def pages() -> list[str]:
    """Every Markdown page of the docs site, relative to docs/, sorted."""
    out = []
    for d, _, files in os.walk(DOCS):
        out += [os.path.relpath(os.path.join(d, f), DOCS) for f in files if f.endswith(".md")]
    return sorted(out)


def blocks(path: str) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their language and marker."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        lang = m["info"].strip().lstrip("{").lstrip(".").split()[0] if m["info"].strip() else ""
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = _MARK.match(prev)
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: code fence never closed")
        out.append(Block(lang, "\n".join(body) + "\n", i + 1, j + 1, mark["mark"] if mark else None))
        i = j + 1
    for b in out:
        if b.mark not in (None, "no-run", "output"):
            raise ValueError(f"{path}:{b.line}: unknown marker 'docs: {b.mark}' (use no-run or output)")
    return out


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip("\n")


def _segments(code: str):
    """Split a block into runs of ordinary lines and single '# raises' lines."""
    chunk, first = [], 1
    for k, line in enumerate(code.split("\n"), start=1):
        m = _RAISES.search(line)
        if m and not line.lstrip().startswith("#"):
            if chunk:
                yield first, "\n".join(chunk), None
            yield k, line, (m["name"] or "")
            chunk, first = [], k + 1
        else:
            chunk.append(line)
    if any(s.strip() for s in chunk):
        yield first, "\n".join(chunk), None


def _exec(code: str, name: str, offset: int, ns: dict) -> None:
    # pad with blank lines so tracebacks point at the page's own line numbers
    exec(compile("\n" * offset + code, name, "exec"), ns)


@dataclass
class Mismatch:
    block: Block
    expected: str
    printed: str


def run_page(path: str, cwd: str | None = None) -> tuple[dict, list[Mismatch], str]:
    """Run a page's python blocks in one namespace; return the namespace, the output blocks that
    differ from what the code printed, and everything printed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = os.path.relpath(path, ROOT)
    ns: dict = {"__name__": "__docs__"}
    since, everything, bad = [], [], []
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        for b in blocks(path):
            if b.mark == "output":
                printed = "".join(since)
                if _normal(printed) != _normal(b.code):
                    bad.append(Mismatch(b, b.code, printed))
                since = []
                continue
            if not b.runs:
                continue
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                for first, code, raises in _segments(b.code):
                    offset = b.line + first - 1
                    if raises is None:
                        _exec(code, name, offset, ns)
                        continue
                    try:
                        _exec(code, name, offset, ns)
                    except Exception as exc:  # noqa: BLE001 - the page says this line raises
                        names = {c.__name__ for c in type(exc).__mro__}
                        if raises and raises not in names:
                            raise AssertionError(f"{name}:{offset + 1}: raised {type(exc).__name__}, "
                                                 f"the page says {raises}") from exc
                    else:
                        raise AssertionError(f"{name}:{offset + 1}: the page says this line raises; it did not")
            since.append(buf.getvalue())
            everything.append(buf.getvalue())
    finally:
        os.chdir(old)
        plt.close("all")
    return ns, bad, "".join(everything)


def _rewrite_outputs(path: str, mismatches: list[Mismatch]) -> None:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for mm in sorted(mismatches, key=lambda m: -m.block.line):
        lines[mm.block.line:mm.block.end - 1] = _normal(mm.printed).split("\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main(argv: list[str]) -> int:
    figures, outputs = "--figures" in argv, "--outputs" in argv
    if not (figures or outputs):
        print(__doc__)
        return 2
    os.makedirs(os.path.join(DOCS, "img"), exist_ok=True)
    import tempfile
    only = [os.path.abspath(a) for a in argv if not a.startswith("--")]
    targets = [os.path.join(DOCS, p) for p in pages()] + ([README] if outputs else [])
    targets = [t for t in targets if not only or t in only]
    for path in targets:
        if not any(b.runs for b in blocks(path)):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            _, bad, _ = run_page(path, cwd=tmp)
            if figures and path != README:
                with open(path, encoding="utf-8") as f:
                    for ref in IMAGE.findall(f.read()):
                        shutil.copyfile(os.path.join(tmp, os.path.basename(ref)), os.path.join(DOCS, ref))
        print(f"{os.path.relpath(path, ROOT)}: {len(bad)} output block(s) differ")
        if outputs and bad:
            _rewrite_outputs(path, bad)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
