"""slide.pipeline.logged: a rule script's output (Python and native) goes to its log; an error is one line."""
import subprocess
import sys
import textwrap


def _run(tmp_path, body: str) -> subprocess.CompletedProcess:
    log = str(tmp_path / "logs" / "rule.log")
    script = "\n".join([
        "import os, sys, types",
        "from slide.pipeline import logged",
        f"snakemake = types.SimpleNamespace(log=[{log!r}])",
        "with logged(snakemake):",
        textwrap.indent(textwrap.dedent(body).strip(), "    "),
        "print('after', flush=True)",
    ])
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_python_and_fd_level_output_go_to_the_log(tmp_path):
    r = _run(tmp_path, """
        print("from python")
        print("to stderr", file=sys.stderr)
        os.write(2, b"from native code\\n")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "after\n" and r.stderr == ""
    log = (tmp_path / "logs" / "rule.log").read_text()
    assert "from python" in log and "to stderr" in log and "from native code" in log


def test_an_error_is_one_terminal_line_and_a_traceback_in_the_log(tmp_path):
    r = _run(tmp_path, """
        raise ValueError("train.txt:4: label 9 out of range")
    """)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: train.txt:4: label 9 out of range (details: "
                                             f"{tmp_path / 'logs' / 'rule.log'})"]
    assert "Traceback" in (tmp_path / "logs" / "rule.log").read_text()
