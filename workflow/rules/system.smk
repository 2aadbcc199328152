# Host check (issue 3): check_system -> results/system/check.json
