"""rule check_system: host report -> results/system/check.json (logic in slide.system)."""
import json
import sys

from slide.atomic import write_json
from slide.pipeline import logged
from slide.system import HostCheckError, check_host, volatile_readings

try:
    with logged(snakemake):  # noqa: F821 (injected by Snakemake)
        p = snakemake.params  # noqa: F821
        # free memory / hugepages change between runs: logged here, kept out of check.json (see slide.system)
        print("volatile readings:", json.dumps(volatile_readings(), sort_keys=True))
        report = check_host(p.policy, p.hugepages_2mb, p.hugepages_1gb)  # strict + problems -> HostCheckError
        write_json(snakemake.output[0], report)  # noqa: F821
        if report["problems"]:  # the log has the details; say so where the user looks
            whats = "; ".join(pr["what"] for pr in report["problems"])
            print(f"check_system warning: missing {whats} (details and fixes: {snakemake.log[0]})",  # noqa: F821
                  file=sys.__stderr__)
        print(f"host check: status {report['status']}, isa {report['isa']}, {len(report['problems'])} problem(s)")
except HostCheckError:
    sys.exit(1)  # logged() already showed the problems and fixes (terminal + log); no traceback
