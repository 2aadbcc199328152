"""Strict configuration: unknown keys (one test per section kind), bad values and cross-section SLIDE rules
are refused by slide.config.check_config, and by the workflow before any job runs."""
import copy

import pytest
import yaml

from slide.config import ConfigError, check_config, load_schema
from workflow_copy import ROOT, snakemake, workflow_copy

SCHEMA = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def merged(*names: str) -> dict:
    """config.yaml with presets merged over it, as `snakemake --configfile` does."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for name in names:
        update_config(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
    return cfg


def refused(cfg: dict) -> str:
    with pytest.raises(ConfigError) as e:
        check_config(cfg, SCHEMA)
    return str(e.value)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_shipped_configs_pass(name):
    check_config(merged(name), SCHEMA)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c.update(trian=c["train"]), "trian: unknown key; did you mean train?"),
    (lambda c: c["train"].update(epcohs=3), "train.epcohs: unknown key; did you mean epochs?"),
    (lambda c: c["model"].update(hiden=[8]), "model.hiden: unknown key; did you mean hidden?"),
    (lambda c: c["dataset"].update(local={"train": "a", "test": "b", "split_colum": 2}),
     "dataset.local.split_colum: unknown key; did you mean split_column?"),
    (lambda c: c["slide"]["layers"][1].update(bucketsize=64),
     "slide.layers[1].bucketsize: unknown key; expected one of hash, K, L, range_pow, sparsity "
     "(bucket_size is a key of slide)"),
    (lambda c: c["tf"].update(num_sampled_fracton=0.2),
     "tf.num_sampled_fracton: unknown key; did you mean num_sampled_fraction?"),
    (lambda c: c["slide"].update(dense_adm=True), "slide.dense_adm: unknown key; did you mean dense_adam?"),
    (lambda c: c["dataset"]["synthetic"].update(n_trian=5), "dataset.synthetic.n_trian: unknown key; did you mean "
                                                             "n_train?"),
    (lambda c: c.update(sweep={"thread": [2]}), "sweep.thread: unknown key; did you mean threads?"),
    (lambda c: c["slide"]["layers"][0].update(k=2), "slide.layers[0].k: unknown key; did you mean K?"),
    (lambda c: c["system"].update(hugepages_2m=4), "system.hugepages_2m: unknown key; did you mean hugepages_2mb?"),
])
def test_unknown_keys_name_the_nearest_valid_one(edit, message):
    cfg = merged("tiny.yaml")
    edit(cfg)
    assert refused(cfg) == message


def test_unknown_key_in_a_download_distribution():
    cfg = merged("amazon670k.yaml")
    dist = cfg["dataset"]["download"]["distributions"]
    name = next(iter(dist))
    dist[name]["sha265"] = None
    assert refused(cfg) == f"dataset.download.distributions.{name}.sha265: unknown key; did you mean sha256?"


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["train"].update(lr=float("nan")), "train.lr: must be a finite number, got nan"),
    (lambda c: c["slide"].update(schedule_growth=float("inf")), "slide.schedule_growth: must be a finite number"),
    (lambda c: c["train"].update(lr=0), "train.lr: 0 is less than or equal to the minimum of 0"),
    (lambda c: c["slide"]["layers"].pop(0), "slide.layers: 1 entries, but model.hidden has 1 layer(s)"),
    (lambda c: c["slide"]["layers"][0].update(sparsity=0.5), "slide.layers[0].sparsity: 0.5, but hidden layers"),
    (lambda c: c.update(sweep={"threads": [100000]}), "sweep.threads[0]: 100000 is greater than the maximum of 1024"),
    (lambda c: c["tf"].update(inter_op_threads=5000), "tf.inter_op_threads: 5000 is greater than the maximum of 1024"),
    (lambda c: c["slide"].update(padding="row"), "slide.padding: 'row' is not one of"),
    (lambda c: c["dataset"]["synthetic"].update(nnz_min=50, nnz_max=10), "dataset.synthetic: expected 1 <= nnz_min "
                                                                         "<= nnz_max"),
])
def test_bad_values_and_slide_rules_are_refused(edit, message):
    cfg = merged("tiny.yaml")
    edit(cfg)
    assert refused(cfg).startswith(message)


def _objects(schema, path="config"):
    if isinstance(schema, dict):
        if "properties" in schema:
            yield path, schema
        for key, sub in schema.items():
            yield from _objects(sub, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from _objects(sub, f"{path}[{i}]")


def test_every_schema_section_is_closed():
    open_ = [p for p, s in _objects(SCHEMA) if s.get("additionalProperties") is not False
             and not p.endswith(".oneOf[0]") and ".if" not in p]
    assert not open_, f"sections without additionalProperties: false: {open_}"


# Options of the core that the pipeline sets from other sections (model, train) or leaves to the API.
NOT_IN_SLIDE_SECTION = {"lr", "seed", "threads", "beta1", "beta2", "eps", "init_std", "init_bias_std", "init_truncated"}
JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean"}


def test_schema_slide_section_matches_the_core_option_table():
    """Each SLIDE option is declared once, in the core (native/src/options.hpp); the schema must agree with it."""
    from slide.network import option_table

    table = option_table()
    section = SCHEMA["properties"]["slide"]["properties"]
    declared = set(section) - {"layers"}
    assert declared == set(table) - NOT_IN_SLIDE_SECTION, (
        f"in the schema only: {declared - set(table)}; in the core only: {set(table) - NOT_IN_SLIDE_SECTION - declared}")
    for name in sorted(declared):
        entry, opt = section[name], table[name]
        assert entry.get("default") == opt["default"], (name, entry.get("default"), opt["default"])
        if opt["choices"]:
            assert entry.get("enum") == opt["choices"], (name, entry.get("enum"), opt["choices"])
            continue
        assert entry.get("type") == JSON_TYPES[opt["type"]], (name, entry.get("type"), opt["type"])
        if opt["minimum"] is not None:
            key = "exclusiveMinimum" if opt["exclusive_minimum"] else "minimum"
            assert entry.get(key) == opt["minimum"], (name, key, entry.get(key), opt["minimum"])
        if opt["maximum"] is not None:
            key = "exclusiveMaximum" if opt["exclusive_maximum"] else "maximum"
            assert entry.get(key) == opt["maximum"], (name, key, entry.get(key), opt["maximum"])
        assert entry.get("description"), f"{name}: no description"


def test_default_config_slide_section_is_the_core_defaults():
    """config/config.yaml's slide section shows the core's defaults (it documents them; presets may differ)."""
    from slide.native import native
    from slide.network import option_table

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["slide"]
    table = option_table()
    differ = {k: (v, table[k]["default"]) for k, v in cfg.items() if k != "layers" and v != table[k]["default"]}
    assert not differ, differ
    assert cfg["layers"] == [dict(layer) for layer in native().DEFAULT_LAYERS]


def test_workflow_refuses_a_typo_before_any_job(tmp_path):
    wd = workflow_copy(tmp_path)
    cfg = copy.deepcopy(yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text()))
    cfg["train"]["epcohs"] = 3
    (wd / "typo.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake(wd, "-n", "--cores", "1", "--configfile", "typo.yaml", timeout=300)
    assert r.returncode != 0
    assert "train.epcohs: unknown key; did you mean epochs?" in r.stdout + r.stderr
    assert "typo.yaml" in r.stdout + r.stderr
    assert "rule " not in r.stdout  # nothing planned, nothing run


def test_default_config_lists_two_datasets_and_paper_names_delicious_and_amazon():
    from slide.config import dataset_entries

    assert [e["name"] for e in dataset_entries(merged())] == ["synthetic10k", "synthetic100k"]
    assert [e["name"] for e in dataset_entries(merged("paper.yaml"))] == ["delicious200k", "amazon670k"]


def test_a_later_file_decides_between_dataset_and_datasets(tmp_path):
    from slide.config import dataset_entries

    one, many = tmp_path / "one.yaml", tmp_path / "many.yaml"
    one.write_text("dataset: {name: one, source: synthetic}\n")
    many.write_text("datasets: [{name: a, source: synthetic}, {name: b, source: synthetic}]\n")
    cfg = {"dataset": {"name": "one", "source": "synthetic"},
           "datasets": [{"name": "a", "source": "synthetic"}, {"name": "b", "source": "synthetic"}]}
    assert [e["name"] for e in dataset_entries(cfg, [many, one])] == ["one"]
    assert [e["name"] for e in dataset_entries(cfg, [one, many])] == ["a", "b"]
    assert [e["name"] for e in dataset_entries(cfg, [one, many], {"dataset": {"name": "one"}})] == ["one"]
    both = tmp_path / "both.yaml"
    both.write_text(one.read_text() + many.read_text())
    with pytest.raises(ConfigError, match=r"both.yaml: sets both dataset and datasets; keep one"):
        dataset_entries(cfg, [both])


def test_a_dataset_entry_overrides_sections_for_itself_only():
    from slide.config import dataset_config, dataset_entries

    cfg = merged()
    cfg["datasets"][1]["train"] = {"lr": 0.5, "caps": {"tf_full": {"epochs": 1}}}
    small, large = (dataset_config(cfg, e) for e in dataset_entries(cfg))
    assert small["train"]["lr"] == cfg["train"]["lr"] and large["train"]["lr"] == 0.5
    assert large["train"]["epochs"] == cfg["train"]["epochs"] and large["train"]["caps"] == {"tf_full": {"epochs": 1}}
    assert "train" not in large["dataset"] and large["dataset"]["name"] == "synthetic100k"
    check_config(cfg, SCHEMA)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["datasets"][1].update(train={"epcohs": 3}),
     "datasets[1] (synthetic100k): train.epcohs: unknown key; did you mean epochs?"),
    (lambda c: c["datasets"][0].update(model={"hidden": [8, 8]}),
     "datasets[0] (synthetic10k): slide.layers: 2 entries, but model.hidden has 2 layer(s)"),
    (lambda c: c["train"].update(caps={"tf_fulll": {"epochs": 1}}), "train.caps: 'tf_fulll' is not one of"),
    (lambda c: c["train"].update(validation=1.0), "train.validation: 1.0 is greater than or equal to the maximum"),
    (lambda c: c.update(systems=["slide", "parabol"]), "systems[1]: 'parabol' is not one of"),
])
def test_bad_dataset_entries_and_training_caps_are_refused_naming_the_dataset(edit, message):
    cfg = merged()
    edit(cfg)
    assert refused(cfg).startswith(message), refused(cfg)
