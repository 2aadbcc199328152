"""The installed extension on a CPU without AVX-512, emulated by valgrind.

pip builds slide._native portable: baseline x86-64 code plus AVX2 and AVX-512 kernels chosen at run time.
Nothing compiled for AVX-512 may run before that choice, or importing the module kills Python with SIGILL
on CPUs that lack it (AMD EPYC before Zen 4, older Xeons). valgrind executes no AVX-512 and its CPUID says so,
so under it this machine looks like such a CPU whatever it really is. The child trains and predicts with
`isa: auto` in both precisions, with a dense output layer and with the paper's DWTA tables; the same script run
natively with `isa: avx2` must print the same numbers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(r'''
    import sys
    import numpy as np
    import scipy.sparse as sp
    from slide.native import native
    from slide.network import Network
    isa = sys.argv[1]
    print("best", native().best_isa())
    rng = np.random.default_rng(0)
    x = sp.random(64, 300, density=0.05, format="csr", dtype=np.float32, random_state=1)
    y = [[int(v)] for v in rng.integers(0, 500, 64)]
    paper = {"hash": "dwta", "K": 6, "L": 50, "range_pow": 18, "sparsity": 0.2}  # the paper's tables, 100 active
    runs = {"fp32": {}, "bf16": {"precision": "bf16"},  # LSH output layer; then a dense one, batched GEMMs
            "dense": {"layers": [{"sparsity": 1.0}, {"sparsity": 1.0}]},
            "dwta": {"layers": [{"sparsity": 1.0}, paper], "select": "union", "mips": False, "random_share": 0.0,
                     "hot_neurons": 0, "min_active": 100}}
    for name, kw in runs.items():
        net = Network(300, 500, hidden=(32,), threads=2, isa=isa, seed=3, **kw)
        losses = [net.train_batch(x, y) for _ in range(3)]
        ids, scores = net.predict_topk(x, 5)
        print(name, net.info()["isa"], " ".join(f"{v:.6g}" for v in losses), ids[:4].tolist(),
              " ".join(f"{v:.6g}" for v in scores[:4].ravel()))
''')


def run(args: list[str], isa: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SLIDE_NATIVE_DIR"}  # the installed, portable build
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # valgrind runs one thread at a time: a spinning one wastes its turn
    return subprocess.run([*args, sys.executable, "-c", SCRIPT, isa], capture_output=True, text=True, env=env,
                          timeout=600)


def test_imports_and_trains_on_a_cpu_without_avx512():
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind not found")
    emulated = run([valgrind, "-q", "--tool=none"], "auto")
    assert emulated.returncode == 0, f"rc {emulated.returncode} under valgrind:\n{emulated.stderr[-3000:]}"
    lines = emulated.stdout.splitlines()
    best = lines[0].split()[1]
    if best.startswith("avx512"):
        pytest.skip(f"valgrind reports {best}: it does not hide AVX-512 here")
    native = run([], best)
    assert native.returncode == 0, native.stderr[-3000:]
    assert [line.split()[1] for line in lines[1:]] == [best] * 4
    assert lines[1:] == native.stdout.splitlines()[1:]
