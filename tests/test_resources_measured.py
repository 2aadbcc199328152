"""The memory that train_slide asks the scheduler for (slide.resources, before its margin) covers what the core
really uses: a fresh process trains SLIDE as the rule does (slide.training.slide_model.train_slide) on a
100k-label synthetic set, and its peak RSS must stay below the estimate, both with this repository's output
layer and with the original's 50 DWTA tables (config/paper-lsh.yaml). docs/scale-out.md has the larger
measurements."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from slide.data.csr import save_split
from slide.data.synthetic import SyntheticSpec, generate
from slide.resources import MIB, Shape, need_bytes
from workflow_copy import ROOT

SPEC = {"n_train": 4000, "n_test": 1000, "n_features": 20000, "n_labels": 100000, "seed": 1}
CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from slide.training.protocol import peak_rss_bytes
    from slide.training.slide_model import train_slide
    d, cfg = Path(sys.argv[1]), json.loads(sys.argv[2])
    train_slide(d / "train.npz", d / "test.npz", d / "meta.json", d / "run", config=cfg, threads=2, progress=False)
    print(json.dumps({"peak": peak_rss_bytes()}))  # this process's own peak (ru_maxrss would include pytest's)
""")


def _config(*overlays: str) -> dict:
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for name in overlays:
        update_config(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
    cfg["train"].update(epochs=1, max_steps=20, eval_every=10)
    return {k: cfg[k] for k in ("model", "train", "slide")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data100k")
    train, test = generate(SyntheticSpec.from_config(SPEC))
    save_split(d / "train.npz", train)
    save_split(d / "test.npz", test)
    (d / "meta.json").write_text(json.dumps({"n_features": train.n_features, "n_labels": train.n_labels}))
    return d


@pytest.mark.slow
@pytest.mark.parametrize("overlays", [(), ("paper-lsh.yaml",)], ids=["default", "paper-lsh"])
def test_train_slide_peak_rss_stays_below_its_estimate(data, overlays, tmp_path):
    cfg = _config(*overlays)
    shape = Shape(SPEC["n_features"], SPEC["n_labels"],
                  sum((data / f).stat().st_size for f in ("train.npz", "test.npz")), "prepared")
    estimate = need_bytes("train_slide", shape, cfg, threads=2)
    run = subprocess.run([sys.executable, "-c", CHILD, str(data), json.dumps(cfg)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    peak = json.loads(run.stdout.strip().splitlines()[-1])["peak"]
    print(f"peak RSS {peak / MIB:.0f} MiB, estimate {estimate / MIB:.0f} MiB")
    assert peak < estimate, f"peak RSS {peak / MIB:.0f} MiB, estimate {estimate / MIB:.0f} MiB"
    # and the estimate is not absurdly loose: the data-dependent part is a real share of it
    assert peak > 0.4 * estimate, f"peak RSS {peak / MIB:.0f} MiB, estimate {estimate / MIB:.0f} MiB"


def test_peak_rss_is_the_process_own_not_its_parents():
    """A job started by a large process (Snakemake, pytest) reports its own peak: getrusage's ru_maxrss keeps
    the parent's size across exec, so a 300 MB parent made every child look at least that large."""
    import numpy as np

    ballast = np.ones(300 * MIB // 8)  # touched: resident in this (the parent) process
    code = "import json; from slide.training.protocol import peak_rss_bytes; print(peak_rss_bytes())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout.strip()) < 250 * MIB, f"child peak {int(run.stdout) / MIB:.0f} MiB"
    assert ballast.sum() > 0


def test_peak_adds_the_reserved_hugepages_mapped():
    from slide.training.protocol import status_peak_bytes

    status = "Name:\tpython\nVmHWM:\t  158900 kB\nVmRSS:\t  150000 kB\nHugetlbPages:\t  452608 kB\n"
    assert status_peak_bytes(status) == (158900 + 452608) * 1024
    assert status_peak_bytes(status, hugetlb_peak=500 * MIB) == 158900 * 1024 + 500 * MIB  # the core's own peak
    assert status_peak_bytes(status, hugetlb_peak=1 * MIB) == (158900 + 452608) * 1024
    assert status_peak_bytes(status.replace("HugetlbPages", "Other")) == 158900 * 1024  # older kernels
    assert status_peak_bytes("Name:\tpython\n") is None


def test_a_network_on_reserved_hugepages_counts_them_in_its_peak():
    """The host's hugepage pool (`vm.nr_hugepages`) is not in VmHWM: a network mapped there looked ~0.5 GB smaller
    at 200k labels than the same one on plain pages. The count survives the network: jobs measure at the end."""
    from slide.system import volatile_readings

    if (volatile_readings()["hugepages"]["2048kB"]["free"] or 0) < 32:  # the 2 MB pool, the one the core maps from
        pytest.skip("fewer than 64 MiB of reserved hugepages free (vm.nr_hugepages)")
    code = textwrap.dedent("""
        import json
        import numpy as np, scipy.sparse as sp
        from slide.network import Network
        from slide.training.protocol import peak_rss_bytes
        net = Network(20_000, 50_000, hidden=(64,), threads=1, hugepages="on")
        x = sp.random(64, 20_000, density=0.001, format="csr", dtype=np.float32, random_state=1)
        net.train_batch(x, [[i] for i in range(64)])
        hugetlb = net.info()["pages"]["hugetlb"]
        del net  # its pages go back to the pool, but they were this process's memory
        hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        print(json.dumps({"peak": peak_rss_bytes(), "vmhwm": hwm, "hugetlb": hugetlb}))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    weights = (20_000 + 50_000) * 64 * 4  # both layers' weights, written at construction
    assert got["hugetlb"] >= 3 * weights  # with their Adam moments
    assert got["peak"] == got["vmhwm"] + got["hugetlb"]
