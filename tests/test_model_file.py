"""Model files are checked at load: checksums of the header and of the whole payload, finite values, possible
training counters; every refusal names the file. One test per kind of damage, plus the k and threads limits."""
import math
import struct

import numpy as np
import pytest
import scipy.sparse as sp

from model_file import COUNTERS, HEADER, counters_at, first_weights_at, meta_len, reseal, xxh64
from slide.network import Network

DENSE = {"hash": "dwta", "K": 2, "L": 4, "range_pow": 4, "sparsity": 1.0}
SPARSE = {"hash": "dwta", "K": 2, "L": 4, "range_pow": 4, "sparsity": 0.3}


def trained(tmp_path, name="good.slide") -> tuple[Network, bytes]:
    net = Network(30, 40, hidden=(8,), layers=[DENSE, SPARSE], seed=1, threads=1, rehash=4, rebuild=8,
                  min_active=4, pad_below=6)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = sp.csr_matrix((rng.random((4, 30)) < 0.3).astype(np.float32))
        net.train_batch(x, [[int(rng.integers(40))] for _ in range(4)])
    net.save(tmp_path / name)
    return net, (tmp_path / name).read_bytes()


def refused(tmp_path, data: bytes, match: str, name="bad.slide"):
    bad = tmp_path / name
    bad.write_bytes(data)
    with pytest.raises((ValueError, RuntimeError)) as e:
        Network.load(bad)
    assert str(bad) in str(e.value) and e.match(match), str(e.value)
    return str(e.value)


def test_xxh64_reference_vectors():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1


def test_file_carries_xxh64_of_its_header_and_of_its_payload(tmp_path):
    net, data = trained(tmp_path)
    end = HEADER + meta_len(data)
    assert struct.unpack("<Q", data[end:end + 8])[0] == xxh64(data[:end])
    assert struct.unpack("<Q", data[-8:])[0] == xxh64(data[:-8])
    assert reseal(data) == data
    again = Network.load(tmp_path / "good.slide")
    assert again.step == net.step == 3


@pytest.mark.parametrize("where", ["weights", "tables", "counters", "last payload byte"])
def test_flipped_byte_fails_the_checksum(tmp_path, where):
    _, data = trained(tmp_path)
    pos = {"weights": first_weights_at(data) + 5, "tables": len(data) - 40, "counters": counters_at(data) + 3,
           "last payload byte": len(data) - 9}[where]
    bad = bytearray(data)
    bad[pos] ^= 0x10
    refused(tmp_path, bytes(bad), "checksum mismatch, the model file is corrupt")


def test_weight_set_to_a_large_finite_value_fails_the_checksum(tmp_path):
    _, data = trained(tmp_path)
    bad = bytearray(data)
    pos = first_weights_at(data)
    bad[pos:pos + 4] = struct.pack("<f", 1e6)
    refused(tmp_path, bytes(bad), "checksum mismatch")


def test_flipped_byte_in_the_metadata_fails_the_header_checksum(tmp_path):
    _, data = trained(tmp_path)
    bad = bytearray(data)
    bad[HEADER + 10] ^= 0x01
    refused(tmp_path, bytes(bad), "checksum mismatch in the model header")
    with pytest.raises((ValueError, RuntimeError), match="bad.slide"):  # reading the metadata alone too
        Network.load_state(Network(30, 40, hidden=(8,), layers=[DENSE, SPARSE], seed=1, threads=1),
                           tmp_path / "bad.slide")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weight_is_refused_even_with_valid_checksums(tmp_path, value):
    _, data = trained(tmp_path)
    bad = bytearray(data)
    pos = first_weights_at(data) + 4 * 7
    bad[pos:pos + 4] = struct.pack("<f", value)
    refused(tmp_path, reseal(bad), r"weights hold an invalid value .* at index 7\); the model file is corrupt")


def test_negative_adam_second_moment_is_refused(tmp_path):
    _, data = trained(tmp_path)
    n = struct.unpack("<Q", data[counters_at(data) + COUNTERS:counters_at(data) + COUNTERS + 8])[0]
    pos = first_weights_at(data) + 2 * (4 * n + 8)  # w block, m block, then the v block's first value
    bad = bytearray(data)
    bad[pos:pos + 4] = struct.pack("<f", -1.0)
    refused(tmp_path, reseal(bad), "Adam second moments hold an invalid value")


@pytest.mark.parametrize("counter,value", [("step", 2 ** 62), ("step", -1), ("samples", -5), ("rehashes", -1),
                                           ("next_rehash", 0.0), ("rehash_interval", math.nan)])
def test_impossible_counters_are_refused(tmp_path, counter, value):
    _, data = trained(tmp_path)
    names = ["step", "samples", "rehashes", "rebuilds", "next_rehash", "next_rebuild", "rehash_interval",
             "rebuild_interval"]
    i = names.index(counter)
    pos = counters_at(data) + 8 * i
    bad = bytearray(data)
    bad[pos:pos + 8] = struct.pack("<q", value) if i < 4 else struct.pack("<d", value)
    refused(tmp_path, reseal(bad), "impossible training counters")


def test_invalid_utf8_metadata_names_the_file(tmp_path):
    _, data = trained(tmp_path)
    bad = bytearray(data)
    bad[HEADER + 2] = 0xFF  # inside the JSON text
    refused(tmp_path, reseal(bad), "model metadata is not valid UTF-8")


def test_file_of_the_previous_format_says_so(tmp_path):
    _, data = trained(tmp_path)
    fmt = struct.unpack("<I", data[8:12])[0]
    old = data[:8] + struct.pack("<I", fmt - 1) + data[12:]
    refused(tmp_path, old, f"model file format {fmt - 1}, this build reads {fmt} \\(retrain, or load it with the "
                           "version that wrote it\\)")


def test_no_temporary_left_and_a_stale_one_is_replaced(tmp_path):
    (tmp_path / ".m.slide.tmp").write_bytes(b"half a model from a killed save")
    net, _ = trained(tmp_path, "other.slide")
    net.save(tmp_path / "m.slide")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.slide", "other.slide"]


@pytest.mark.parametrize("k", [0, -1, 41, 2 ** 31, 2 ** 63, 2 ** 80])
def test_predict_topk_k_out_of_range_is_a_value_error(tmp_path, k):
    net, _ = trained(tmp_path)
    x = sp.csr_matrix(np.ones((2, 30), np.float32))
    with pytest.raises(ValueError, match=rf"k must be in \[1, 40\], got {k}"):
        net.predict_topk(x, k)


@pytest.mark.parametrize("threads", [-1, 1025, 100000])
def test_absurd_thread_counts_are_refused_by_the_core(threads):
    with pytest.raises(ValueError, match=f"threads must be in 1..1024 \\(0: all cores\\), got {threads}"):
        Network(30, 40, hidden=(8,), layers=[DENSE, SPARSE], threads=threads)


@pytest.mark.parametrize("victim", ["model", "metrics.csv"])
def test_corrupt_checkpoint_stops_the_resume_with_its_name(tmp_path, victim):
    from slide.data.csr import Split
    from slide.training.protocol import TrainConfig, run_training
    from slide.training.slide_model import SlideModel

    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random((64, 30)) < 0.3).astype(np.float32))
    lab_ptr = np.arange(65, dtype=np.int64)
    split = Split(x.indptr.astype(np.int64), x.indices.astype(np.int32), x.data, lab_ptr,
                  rng.integers(0, 40, 64).astype(np.int32), 30, 40)

    def net():
        return SlideModel(Network(30, 40, hidden=(8,), layers=[DENSE, SPARSE], seed=1, threads=1, min_active=4,
                                  pad_below=6))

    class Stop(Exception):
        pass

    dying = net()
    real = dying.train_batch
    dying.train_batch = lambda b: (_ for _ in ()).throw(Stop()) if dying.net.step == 5 else real(b)
    cfg = TrainConfig(batch_size=8, epochs=2, eval_every=3, eval_samples=16, checkpoint_every=2)
    with pytest.raises(Stop):
        run_training(dying, "slide", split, split, cfg, tmp_path, progress=False)
    (ckpt,) = (tmp_path / "checkpoint").iterdir()
    assert ckpt.name == "step-000000000004"
    data = bytearray((ckpt / victim).read_bytes())
    data[first_weights_at(bytes(data)) + 1 if victim == "model" else len(data) // 2] ^= 0x04
    (ckpt / victim).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{ckpt}: cannot resume from this checkpoint \(its files differ from the "
                                         rf"sha256 recorded in state.json\); delete {tmp_path / 'checkpoint'} to "
                                         "start the run over"):
        run_training(net(), "slide", split, split, cfg, tmp_path, progress=False)


def test_a_full_disk_leaves_the_earlier_file_and_no_temporary(tmp_path):
    """A write that runs out of room (here a file size limit, as a full disk: the writes fail) names the file,
    removes its temporary and leaves what was there; it used to name the temporary and leave it behind."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "m.slide").write_text("earlier")
    code = textwrap.dedent(f"""
        import resource, signal
        from slide.network import Network
        net = Network(20_000, 500, hidden=(32,), threads=1)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            net.save({str(tmp_path / "m.slide")!r})
        except RuntimeError as e:
            print(e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == (f"{tmp_path / 'm.slide'}: write failed (File too large); "
                                "the file there, if any, is unchanged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.slide"]
    assert (tmp_path / "m.slide").read_text() == "earlier"
