"""The report's rendering: a list of blocks to Markdown, and to one self-contained HTML page.

A block is a one-key dict: h1, h2, h3, p (text with **bold** and `code`), li, table (header,
rows), img (path relative to the report, caption).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path


def to_markdown(blocks: list[dict]) -> str:
    out = []
    for blk in blocks:
        (kind, val), = blk.items()
        if kind == "h1":
            out.append(f"# {val}\n")
        elif kind == "h2":
            out.append(f"\n## {val}\n")
        elif kind == "h3":
            out.append(f"\n### {val}\n")
        elif kind == "p":
            out.append(f"{val}\n")
        elif kind == "li":
            out.append(f"- {val}")
        elif kind == "table":
            header, rows = val
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(r) + " |" for r in rows]
            out.append("")
        elif kind == "img":
            path, caption = val
            out.append(f"![{caption}]({path})\n")
    return "\n".join(out).rstrip() + "\n"


def to_html(blocks: list[dict], folder: Path) -> str:
    """One page, pictures embedded (base64), so the file can be sent alone."""
    def inline(s: str) -> str:
        s = html.escape(s)
        parts = s.split("**")
        s = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
        parts = s.split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    body, in_list = [], False
    for blk in blocks:
        (kind, val), = blk.items()
        if kind != "li" and in_list:
            body.append("</ul>")
            in_list = False
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{inline(val)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{inline(val)}</p>")
        elif kind == "li":
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{inline(val)}</li>")
        elif kind == "table":
            header, rows = val
            body.append("<table><tr>" + "".join(f"<th>{inline(h)}</th>" for h in header) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>"
                                  for r in rows) + "</table>")
        elif kind == "img":
            path, caption = val
            data = base64.b64encode((folder / path).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if in_list:
        body.append("</ul>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:left}th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}"
             "figcaption{color:#555;font-size:.9em}")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>SER report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
