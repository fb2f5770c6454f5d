"""The command line on bad input: one ``error:`` line and a non-zero exit, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mixedfx.cli.main import main

FORMULA = "Reaction ~ Days + (1 | Subject)"


def run_cli(*args):
    """Run ``python -m mixedfx`` as users do; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "mixedfx", *args], capture_output=True, text=True, env=env,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def exits_with(argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    text = str(info.value.code)
    assert text.startswith("error: ") and message in text, text


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    exits_with(["fit", FORMULA, "--data", str(path)], "is an empty file")


def test_directory(tmp_path):
    exits_with(["fit", FORMULA, "--data", str(tmp_path)], "is a directory")


def test_binary_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(bytes(range(256)) * 20)
    exits_with(["fit", FORMULA, "--data", str(path)], "looks like a binary file")


def test_text_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("Réaction,Days\n1,2\n".encode("latin-1"))
    exits_with(["fit", FORMULA, "--data", str(path)], "is not a text CSV file")


def test_header_only_csv(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("Reaction,Days,Subject\n")
    exits_with(["fit", FORMULA, "--data", str(path)], "has 0 row(s) and 3 column(s)")


def test_broken_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    exits_with(["fit", FORMULA, "--data", str(path)], "could not read --data")


def test_parquet_without_its_extension_is_recognised(tmp_path, capsys):
    import mixedfx as mfx
    path = tmp_path / "sleep.data"
    mfx.datasets.load("sleepstudy").to_parquet(path)
    assert main(["fit", FORMULA, "--data", str(path), "--json"]) == 0
    assert '"Days"' in capsys.readouterr().out


@pytest.mark.parametrize("case", ["empty", "directory", "binary"])
def test_no_traceback_from_the_real_command(tmp_path, case):
    if case == "empty":
        target = tmp_path / "empty.csv"
        target.write_bytes(b"")
    elif case == "binary":
        target = tmp_path / "blob.csv"
        target.write_bytes(b"\x00\x01\x02" * 100)
    else:
        target = tmp_path
    code, out, err = run_cli("fit", FORMULA, "--data", str(target))
    assert code != 0 and err.startswith("error: ") and "Traceback" not in err


def test_model_errors_are_one_line(tmp_path):
    code, out, err = run_cli("fit", "Reaction ~ Days + (Reaction | Subject)", "--data", "sleepstudy")
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "appears in the random-effects term" in err


def test_json_into_a_closed_pipe_is_quiet():
    """``mixedfx fit ... --json | head -1``: the reader leaves early; no BrokenPipe traceback."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "mixedfx", "fit", "Reaction ~ Days + (Days | Subject)",
                          "--data", "sleepstudy", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()            # the reader is gone before anything is written
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert p.returncode != 0
