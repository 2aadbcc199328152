"""Glue for workflow/scripts: log redirection and reading the `snakemake` object. Keeps scripts thin."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path


# Characters that a POSIX shell splits on, expands or treats as syntax in an unquoted word.
_SHELL_UNSAFE = set(" \t\n'\"`\\$;&|<>()")


def script_interpreter_error(executable: str) -> str | None:
    """Why Snakemake could not start this workflow's scripts with `executable`, or None.

    Snakemake 9 starts a `script:` rule as `<its own Python> '<script>'` with the interpreter's path unquoted,
    so a path with a space (a clone in "~/My Projects" with the README's .venv inside it) makes every rule fail
    with "No such file or directory" and exit status 127, after the DAG was built. Said once, up front."""
    bad = sorted(set(executable) & _SHELL_UNSAFE)
    if not bad:
        return None
    shown = " ".join("a space" if c == " " else repr(c) for c in bad)
    return (f"{executable}: the Python running Snakemake has {shown} in its path, and Snakemake starts every "
            "script rule with that path unquoted, so the shell would misread it and every job would fail; create "
            "the virtual environment (or clone the repository, with its .venv) under a path without it")


@contextlib.contextmanager
def logged(snakemake):
    """Send stdout, stderr and `logging` of a script to the rule's log file (its first `log:` entry).

    Progress bars (tqdm, stderr) land there too; `tail -f` the log to follow a long rule. File descriptors
    1 and 2 are redirected as well, so native libraries (TensorFlow's C++ logging, OpenMP) write there too.
    On an error the terminal gets one line; the traceback stays in the log.
    """
    logs = list(getattr(snakemake, "log", []) or [])
    if not logs:
        yield
        return
    path = Path(logs[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        logging.basicConfig(stream=f, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
        except Exception as e:
            import traceback

            traceback.print_exc(file=f)
            os.write(saved[1], f"error: {e} (details: {path})\n".encode())
            raise SystemExit(1) from None
        finally:
            f.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
