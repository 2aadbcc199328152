"""One source of the network shape and training defaults (slide.defaults): config/config.yaml says the same, the
schema's defaults agree, and SLIDE and the TensorFlow baselines take their unset arguments from it."""
import inspect

import pytest
import yaml

from slide import defaults
from workflow_copy import ROOT

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


@pytest.mark.parametrize("section,values", [("model", defaults.MODEL), ("train", defaults.TRAIN)])
def test_default_config_says_what_slide_defaults_says(section, values):
    for key, value in values.items():
        assert CONFIG[section][key] == value, f"config/config.yaml {section}.{key}: {CONFIG[section][key]!r}, " \
                                              f"slide.defaults: {value!r}"


@pytest.mark.parametrize("section,values", [("model", defaults.MODEL), ("train", defaults.TRAIN)])
def test_schema_defaults_agree(section, values):
    props = SCHEMA["properties"][section]["properties"]
    for key, value in values.items():
        if "default" in props.get(key, {}):
            assert props[key]["default"] == value, f"schema {section}.{key}"


def test_every_default_is_in_its_section():
    assert list(defaults.MODEL["hidden"]) == list(defaults.HIDDEN)
    assert set(defaults.TRAIN) <= set(CONFIG["train"])
    assert set(defaults.MODEL) <= set(CONFIG["model"])


def _arg_defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_slide_network_takes_the_shared_defaults():
    from slide.network import Network

    d = _arg_defaults(Network.__init__)
    assert tuple(d["hidden"]) == defaults.HIDDEN
    assert d["seed"] == defaults.SEED
    assert d["lr"] in (defaults.LR, None)  # None: the default of the core's option table


def test_the_core_option_table_agrees():
    from slide.network import option_table

    table = option_table()
    assert table["lr"]["default"] == defaults.LR
    assert table["seed"]["default"] == defaults.SEED


def test_tf_baseline_takes_the_shared_defaults():
    pytest.importorskip("tensorflow")
    from slide.baselines.tf_models import TFBaseline

    d = _arg_defaults(TFBaseline.__init__)
    assert tuple(d["hidden"]) == defaults.HIDDEN
    assert (d["lr"], d["seed"]) == (defaults.LR, defaults.SEED)


def test_tf_build_model_fills_missing_sections_from_the_defaults(monkeypatch):
    pytest.importorskip("tensorflow")
    from slide.baselines import tf_models, train

    seen = {}

    class Fake:
        def __init__(self, n_features, n_labels, **kw):
            seen.update(kw)

    monkeypatch.setattr(tf_models, "TFBaseline", Fake)
    train.build_model("full", 10, 5, {}, {}, {}, threads=1)
    assert tuple(seen["hidden"]) == defaults.HIDDEN
    assert (seen["lr"], seen["seed"]) == (defaults.LR, defaults.SEED)
