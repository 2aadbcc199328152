# Host check: check_system -> results/system/check.json


rule check_system:
    """Record what this host offers (CPU/ISA, memory, THP, hugepages) and what is missing, with fixes.

    No input: it runs once, when check.json is missing. Recheck a changed host with
    `snakemake --cores 1 results/system/check.json -R check_system`; an identical check.json
    (the report holds no timestamps or volatile readings) reruns nothing downstream.
    """
    output:
        "results/system/check.json",
    log:
        "results/logs/check_system/check.log",
    params:
        policy=config["system"]["policy"],
        hugepages_2mb=config["system"].get("hugepages_2mb", 0),
        hugepages_1gb=config["system"].get("hugepages_1gb", 0),
    resources:
        **job_resources("check_system"),
    conda:
        "../../envs/slide.yaml"
    script:
        "../scripts/check_system.py"
