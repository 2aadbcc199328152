"""Glue for workflow/scripts: log redirection and reading the `snakemake` object. Keeps scripts thin."""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path


@contextlib.contextmanager
def logged(snakemake):
    """Send stdout, stderr and `logging` of a script to the rule's log file (its first `log:` entry).

    Progress bars (tqdm, stderr) land there too; `tail -f` the log to follow a long rule.
    """
    logs = list(getattr(snakemake, "log", []) or [])
    if not logs:
        yield
        return
    path = Path(logs[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        logging.basicConfig(stream=f, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            yield
        except Exception as e:
            # one clear line in the log and on the terminal; the traceback stays in the log
            import traceback

            traceback.print_exc(file=f)
            print(f"error: {e}", file=sys.__stderr__)
            raise
