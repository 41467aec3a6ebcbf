"""The self-contained page: escaping, number formats, embedded images, verdict badges, the stylesheet and the
document around the sections.

Every string that came from a file or a user goes through ``esc``; the helpers that take ``html`` arguments take
markup built here from escaped parts. Images are data URIs, so the page opens offline as one file.
"""

from __future__ import annotations

import base64
import html
import math
import re

from aligntriage.diagnose.kinds import KINDS


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def code(text: str) -> str:
    return f"<code>{esc(text)}</code>"


def num(x) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.3g}" if abs(x) >= 5e-4 else "0"


def pct(x) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.0%}"


def share(x) -> str:
    """A share of behaviour explained: below zero only says the hypothesis predicts the agent worse than a
    uniform-random policy (its size then means nothing to a reader: the ratio's denominator may be tiny)."""
    return "<0%" if x is not None and math.isfinite(x) and x < -0.005 else pct(x)


def bounded(point: float, low: float | None, high: float | None, fmt=num) -> str:
    """A figure with its 95% interval when it has one."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return fmt(point)
    return f"{fmt(point)} <small>[{fmt(low)}, {fmt(high)}]</small>"


def img(data: bytes, alt: str, mime: str = "image/png", css: str = "") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    klass = f' class="{css}"' if css else ""
    return f'<img{klass} src="data:{mime};base64,{encoded}" alt="{esc(alt)}">'


def figure(data: bytes | None, alt: str, caption: str, mime: str = "image/png") -> str:
    """A figure with its caption (``caption`` is markup built from escaped parts)."""
    if data is None:
        return ""
    return f"<figure>{img(data, alt, mime)}<figcaption>{caption}</figcaption></figure>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def kind_class(kind: str) -> str:
    return "v-" + re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")


def badge(kind: str, probability: float | None = None) -> str:
    """A verdict kind in its colour from the kinds table, with its probability when given."""
    known = kind_class(kind) if kind in KINDS else "v-other"
    tail = f" <small>{pct(probability)}</small>" if probability is not None else ""
    return f'<span class="v {known}">{esc(kind)}{tail}</span>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def _text_on(hex_colour: str) -> str:
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#111" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "#fff"


BADGES = "".join(f".{kind_class(k.name)}{{background:{k.hex};color:{_text_on(k.hex)}}}" for k in KINDS.values())

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;
 background:#f6f7f9;line-height:1.5}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 12px #0001}
h1{font-size:1.6em;margin:0 0 4px}h2{margin-top:2.2em;border-bottom:2px solid #e3e6ea;padding-bottom:4px}
h3{margin-bottom:.4em}
.sub{color:#555;margin-top:0}
nav{font-size:.9em;margin:12px 0 8px;padding:8px 12px;background:#f1f3f6;border-radius:6px}
nav a{margin-right:12px;white-space:nowrap}
.banner{border:2px solid #c62828;background:#fdecea;color:#7f1d1d;border-radius:6px;padding:8px 14px;margin:12px 0;
 font-weight:600}
.banner.warn{border-color:#f9a825;background:#fff8e1;color:#5d4300;font-weight:normal}
table{border-collapse:collapse;margin:10px 0;font-size:.92em}
th,td{border:1px solid #d9dde3;padding:5px 9px;text-align:left;vertical-align:top}
th{background:#f1f3f6}
tr.focus td{background:#fffbe6}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.sub{padding-left:2em;color:#444}td.held{color:#1b5e20}td.failed{color:#b71c1c}
.v{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:.92em;white-space:nowrap}
.v-other{background:#e6e6e6}
.summary{display:grid;grid-template-columns:1fr;gap:14px;margin:18px 0}
.card{border:1px solid #d9dde3;border-radius:8px;padding:10px 16px;background:#fbfcfd}
.card h3{margin:.3em 0}.card ul{padding-left:1.2em;margin:.4em 0}.card li{margin:.45em 0}
.wrong{border-top:4px solid #c0392b}.why{border-top:4px solid #1f6fd1}.change{border-top:4px solid #2e9e5b}
blockquote{margin:.4em 0 .4em 1em;padding-left:.8em;border-left:3px solid #cfd6df;color:#444;font-size:.92em}
figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #eceef1}
figcaption{color:#444;font-size:.9em;max-width:900px}
.episodes figure{margin:10px 0 22px}
.pair{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.episodes img.gif{image-rendering:pixelated}
.note{color:#555;font-style:italic}
.explain{margin:.4em 0 1em;max-width:920px}
details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
dl.glossary dt{font-weight:600;margin-top:.6em}dl.glossary dd{margin-left:1.2em}
code{background:#f1f3f6;padding:0 4px;border-radius:3px;font-size:.92em}
footer{margin-top:3em;color:#777;font-size:.85em}
""" + BADGES


def document(title: str, heading: str, lead: str, nav: list[tuple[str, str]], body: str, footer: str) -> str:
    """The whole page; ``heading``, ``lead``, ``body`` and ``footer`` are markup, ``title`` and nav titles text."""
    links = " ".join(f'<a href="#{esc(anchor)}">{esc(text)}</a>' for anchor, text in nav)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><main><h1>{heading}</h1>{lead}<nav>{links}</nav>{body}"
            f"<footer>{footer}</footer></main></body></html>")
