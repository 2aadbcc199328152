"""Evaluation and reporting: figures, the summary table with speedups, provenance.

Modules: runs (loading and grouping training runs), figures, summary, provenance, html (report pages).
Nothing is imported here so that `import slide.report.runs` stays light (no matplotlib).
"""
