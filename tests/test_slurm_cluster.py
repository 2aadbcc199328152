"""The SLURM profile on a real cluster: a single-node SLURM (Debian's slurm-wlm + munge, accounting storage off,
as many small clusters run) is installed and started here, the tiny configuration runs through
workflow/profiles/slurm, every rule must run as a SLURM job, and the results must equal a local run.

Runs where it is root and apt-get can install slurm-wlm and munge (CI); elsewhere it skips with the reason. It
writes /etc/slurm/slurm.conf (the job steps' srun reads only the default path: the jobstep plugin drops
SLURM_CONF from their environment) and removes it afterwards; a machine that already has one is left alone.
"""
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from workflow_copy import snakemake, workflow_copy

pytestmark = pytest.mark.slow

CONF = Path("/etc/slurm/slurm.conf")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
DETERMINISTIC = ["system", "step", "epoch", "p_at_1", "p_at_3", "p_at_5", "eval_samples", "loss"]


def _run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _install_slurm():
    """Install slurm-wlm and munge with apt-get when missing; skip (with the reason) when that is impossible."""
    if all(shutil.which(b) for b in BINARIES):
        return
    if shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quick = ["-o", "Acquire::Retries=0", "-o", "Acquire::http::Timeout=20"]  # an unreachable archive skips soon
    for cmd, timeout in ((["apt-get", *quick, "update", "-qq"], 300),
                         (["apt-get", *quick, "install", "-y", "-qq", "--no-install-recommends", "slurm-wlm", "munge"],
                          900)):
        try:
            r = _run(cmd, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip(f"{' '.join(cmd)} timed out after {timeout} s")
        if r.returncode != 0:
            pytest.skip(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"slurm-wlm/munge installed but {missing} not on PATH")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_memory_mb():
    kib = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1))
    return kib // 1024 - 1024  # leave 1 GB to the system, as slurmd would otherwise drain the node


def slurm_conf(d: Path, mem_mb: int) -> str:
    """A minimal single-node cluster for a container: no cgroups, no accounting storage, state in `d`."""
    return f"""\
ClusterName=slidetest
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """munged, slurmctld and slurmd started in the foreground (so that this fixture owns them) on a temp dir."""
    if os.geteuid() != 0:
        pytest.skip("needs root: installs slurm-wlm/munge and runs slurmctld/slurmd")
    if CONF.exists():
        pytest.skip(f"{CONF} exists: this machine has its own SLURM configuration, which this test does not replace")
    _install_slurm()
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool"):
        (d / sub).mkdir()
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    mem_mb = _node_memory_mb()
    created_dir = not CONF.parent.exists()
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(slurm_conf(d, mem_mb))
    procs = []
    try:
        procs.append(subprocess.Popen(
            ["munged", "-F", "-f", f"--key-file={key}", f"--socket={d}/munge/munge.sock",
             f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munge/seed"]))
        deadline = time.time() + 20
        while not (d / "munge" / "munge.sock").exists() and time.time() < deadline:
            time.sleep(0.2)
        procs.append(subprocess.Popen(["slurmctld", "-D", "-i"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1)
        procs.append(subprocess.Popen(["slurmd", "-D", "-N", "localhost"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        state, deadline = "", time.time() + 90
        while time.time() < deadline:
            r = _run(["sinfo", "-h", "-N", "-o", "%t"], timeout=20)
            state = r.stdout.strip()
            if state == "idle":
                break
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(1)
        if state != "idle":
            logs = "\n".join(p.read_text()[-1500:] for p in (d / "slurmctld.log", d / "slurmd.log") if p.exists())
            pytest.fail(f"the SLURM node did not become idle (sinfo: {state!r}):\n{logs}")
        yield {"dir": d, "mem_mb": mem_mb}
    finally:
        jobs = _run(["squeue", "-h", "-o", "%i"], timeout=20).stdout.split() if procs else []
        if jobs:
            _run(["scancel", *jobs], timeout=20)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        CONF.unlink()
        if created_dir:
            CONF.parent.rmdir()


def _results(wd: Path):
    out = {}
    for run in sorted((wd / "results" / "runs" / "tiny").iterdir()):
        final = json.loads((run / "final.json").read_text())
        with open(run / "metrics.csv", newline="") as f:
            rows = [{k: r[k] for k in DETERMINISTIC} for r in csv.DictReader(f)]
        out[run.name] = ({k: final[k] for k in ("p_at_1", "p_at_3", "p_at_5", "steps", "test_samples")}, rows)
    return out


def test_tiny_config_through_the_slurm_profile_equals_a_local_run(slurm_cluster, tmp_path):
    wd = workflow_copy(tmp_path / "slurm")
    (wd / "cluster.yaml").write_text(
        f"cluster: {{cores: 2, mem_mb: {slurm_cluster['mem_mb']}, partition: debug, runtime: {{train: 60, other: 30}}}}\n")
    t0 = time.time()
    r = snakemake(wd, "--profile", "workflow/profiles/slurm", "--configfile", "config/tiny.yaml", "cluster.yaml",
                  timeout=1200)
    seconds = time.time() - t0
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-5000:]

    # every rule of the run, but the local target `all`, was submitted to SLURM and completed there
    rules = set(re.findall(r"^rule (\w+):$", log, re.M))
    submitted = dict((rule, int(job)) for job, rule in
                     re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", log))
    assert rules and rules == set(submitted), (rules, submitted)
    ctld = (slurm_cluster["dir"] / "slurmctld.log").read_text()
    for rule, job in submitted.items():
        # started by the main scheduler ("Allocate JobId=5 NodeList=localhost") or by backfill ("Started JobId=5")
        assert re.search(rf"(Allocate|Started) JobId={job} .*localhost", ctld), rule
        assert f"_job_complete: JobId={job} WEXITSTATUS 0" in ctld, rule
    assert "Falling back to 'sacct'" not in log  # status by squeue: accounting storage is off here

    # each training job stayed within the memory it asked for (computed from the data, not fixed)
    jobs = [b for b in log.split("\n\n") if re.search(r"^rule train_\w+:$", b, re.M)]
    for system in ("slide", "tf_full", "tf_sampled"):  # train_slide, train_tf (system: a wildcard)
        (block,) = [b for b in jobs if re.search(rf"^\s*output: results/runs/tiny/{system}/final.json", b, re.M)]
        requested = int(re.search(r"\bmem_mb=(\d+)", block).group(1))
        peak = json.loads((wd / "results" / "runs" / "tiny" / system / "final.json").read_text())["peak_rss_bytes"]
        assert peak < requested * 1e6, (system, peak, requested)

    # the same numbers as a local run of the same configuration
    local = workflow_copy(tmp_path / "local")
    r = snakemake(local, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _results(wd) == _results(local)
    print(f"SLURM run: {len(submitted)} jobs in {seconds:.0f} s")


def test_preflight_stops_before_submitting_what_no_node_can_run(slurm_cluster, tmp_path):
    wd = workflow_copy(tmp_path / "wf")
    (wd / "cluster.yaml").write_text("cluster: {partition: debug}\n")  # no cores: training would ask for 256 CPUs
    r = snakemake(wd, "--profile", "workflow/profiles/slurm", "--configfile", "config/tiny.yaml", "cluster.yaml",
                  timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode != 0
    assert "SLURM preflight: " in log
    assert "build_native asks for 256 CPUs, the largest node in partition debug has 2; set cluster.cores to at most 2" in log
    assert "train_slide asks for 256 CPUs" in log
    assert "has been submitted with SLURM jobid" not in log
