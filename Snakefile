# SLIDE reproduction pipeline: raw data -> prepared splits -> host check -> native build -> training
# (SLIDE, TF full softmax, TF sampled softmax) -> figures, summary and report. See README.md.
configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/system.smk"
include: "workflow/rules/native.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/audit.smk"


rule all:
    default_target: True
    input:
        final_targets(),
