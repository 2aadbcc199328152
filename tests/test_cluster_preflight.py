"""slide.cluster: sinfo output parsed, every job's request compared with the largest node of its partition."""
import pytest

from slide import cluster as C

SINFO = """\
debug* 2 4000 infinite
batch 32 128000 2-00:00:00
batch 64 64000 2-00:00:00
short 8 16000 30:00
"""


def test_parse_sinfo_groups_nodes_by_partition_and_marks_the_default():
    parts = C.parse_sinfo(SINFO)
    assert sorted(parts) == ["batch", "debug", "short"]
    assert parts["debug"].default and not parts["batch"].default
    assert (parts["batch"].max_cpus, parts["batch"].max_mem_mb) == (64, 128000)
    assert parts["batch"].time_limit_min == 2880 and parts["debug"].time_limit_min is None
    assert parts["short"].time_limit_min == 30


@pytest.mark.parametrize("text,minutes", [("infinite", None), ("UNLIMITED", None), ("45", 45), ("30:00", 30),
                                          ("1:30:00", 90), ("1-00:00:00", 1440), ("2-12", 3600), ("1-02:30", 1590)])
def test_time_limits(text, minutes):
    assert C.parse_time_limit(text) == minutes


def test_bad_sinfo_output_names_the_line():
    with pytest.raises(ValueError, match=r"sinfo output line 2: expected 'PARTITION CPUS MEMORY TIMELIMIT'"):
        C.parse_sinfo("debug* 2 4000 infinite\ngarbage\n")
    with pytest.raises(ValueError, match=r"line 1: expected memory \(MB\) as a number, got 'lots'"):
        C.parse_sinfo("debug* 2 lots infinite\n")
    with pytest.raises(ValueError, match="cannot read the time limit 'soon'"):
        C.parse_sinfo("debug* 2 4000 soon\n")


def test_requests_that_fit_pass():
    parts = C.parse_sinfo(SINFO)
    assert C.check([C.Request("prepare", 1, 1000, 120), C.Request("train_slide", 2, 3900, 1440)], parts) == []
    assert C.check([C.Request("train_slide", 64, 60000, 2880, "batch")], parts) == []


def test_the_message_names_rule_need_and_largest_node():
    parts = C.parse_sinfo(SINFO)
    msgs = C.check([C.Request("train_slide", 2, 9000, 60)], parts)
    assert msgs == ["train_slide needs 9.0 GB, the largest node in partition debug has 4.0 GB"]
    msgs = C.check([C.Request("train_tf_full", 256, 1000, 60, "batch")], parts)
    assert msgs == ["train_tf_full asks for 256 CPUs, the largest node in partition batch has 64; "
                    "set cluster.cores to at most 64"]
    # 64 CPUs exist and 128 GB exist, but not on the same node
    msgs = C.check([C.Request("train_slide", 64, 100000, 60, "batch")], parts)
    assert msgs == ["train_slide asks for 64 CPUs and 100 GB on one node; no node in partition batch has both"]
    msgs = C.check([C.Request("train_slide", 8, 1000, 1440, "short")], parts)
    assert msgs == ["train_slide asks for 1440 min, partition short allows 30 min; set cluster.runtime"]
    msgs = C.check([C.Request("prepare", 1, 1000, 60, "gpu")], parts)
    assert msgs == ["prepare: partition gpu does not exist (sinfo lists batch, debug, short); set cluster.partition"]


def test_one_message_per_problem_and_preflight_raises_with_all_of_them():
    reqs = [C.Request("train_slide_sweep", 2, 9000, 60)] * 3 + [C.Request("prepare", 4, 1000, 60)]
    with pytest.raises(RuntimeError) as e:
        C.preflight(reqs, sinfo_output=SINFO)
    assert str(e.value) == ("SLURM preflight: train_slide_sweep needs 9.0 GB, the largest node in partition debug "
                            "has 4.0 GB; prepare asks for 4 CPUs, the largest node in partition debug has 2; "
                            "set cluster.cores to at most 2")


def test_no_default_partition_and_no_partitions():
    parts = C.parse_sinfo("batch 32 128000 infinite\n")
    assert C.check([C.Request("prepare", 1, 1000)], parts) == [
        "prepare: no partition given and the cluster has no default one; set cluster.partition to one of batch"]
    assert "lists no partitions" in C.check([C.Request("prepare", 1, 1000)], {})[0]
