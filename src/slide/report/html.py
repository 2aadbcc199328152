"""Small self-contained HTML pages for the Snakemake report (it embeds .html results; .csv/.json only download)."""
from __future__ import annotations

import json
from html import escape

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.2em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:0.95em}h2{margin-top:1.4em}
"""


def page(title: str, sections: list[tuple[str, object]]) -> str:
    """sections: ("h2", text) | ("p", text) | ("ul", [text]) | ("table", (header, rows)) | ("kv", dict)."""
    body = [f"<h1>{escape(title)}</h1>"]
    for kind, content in sections:
        if kind in ("h2", "p"):
            body.append(f"<{kind}>{escape(str(content))}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{escape(str(i))}</li>" for i in content) + "</ul>")
        elif kind == "table":
            body.append(table(*content))
        elif kind == "kv":
            body.append(kv_table(content))
        else:
            raise ValueError(f"unknown section kind {kind!r}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(d: dict | None) -> str:
    """A nested dict as a two-column table with dotted keys (lists shown as JSON)."""
    if not d:
        return "<p><em>not available</em></p>"
    return table(["key", "value"], [[k, v] for k, v in flatten(d).items()])


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, str) else json.dumps(v)
    return out


def _cell(c) -> str:
    s = str(c)
    num = s.replace(".", "", 1).replace("×", "").replace("-", "", 1).isdigit()
    return f"<td class='num'>{escape(s)}</td>" if num else f"<td>{escape(s)}</td>"
