"""The HTML of ``facematch-app``: one server-rendered page (forms, then a result or an error), no script,
no external asset, so it works offline and a browser test can read it by element id.

Ids the browser test reads: ``compare-form`` (``photo1``, ``photo2``, ``compare-submit``), ``search-form``
(``photo``, ``search-submit``), ``decision``, ``similarity``, ``threshold``, ``figure``, ``results``,
``error``. Every text that came from a user (file names) is escaped here (:func:`esc`).
"""

from __future__ import annotations

import base64
import html
from typing import Sequence

CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1e1e1e;
       background: #f3f4f6; line-height: 1.45; }
header { background: #1f2937; color: #f9fafb; padding: 14px 28px; }
header h1 { margin: 0; font-size: 22px; letter-spacing: .3px; }
header p { margin: 2px 0 0; color: #cbd5e1; font-size: 14px; }
main { max-width: 1100px; margin: 0 auto; padding: 20px 28px 40px; }
.forms { display: flex; gap: 20px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 16px 20px; flex: 1 1 420px;
        box-shadow: 0 1px 2px rgba(0,0,0,.04); }
.card h2 { margin: 0 0 10px; font-size: 18px; }
label { display: block; margin: 8px 0 4px; font-weight: 600; font-size: 14px; }
input[type=file], select, input[type=number] { font-size: 14px; }
.row { display: flex; gap: 18px; flex-wrap: wrap; align-items: end; }
button { margin-top: 14px; background: #2563eb; color: #fff; border: 0; border-radius: 6px; padding: 8px 18px;
         font-size: 15px; cursor: pointer; }
.hint { color: #6b7280; font-size: 13px; margin: 6px 0 0; }
#error { background: #fef2f2; border: 1px solid #fca5a5; color: #991b1b; border-radius: 8px; padding: 12px 16px;
         margin: 0 0 18px; font-size: 15px; }
.result { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 16px 20px; margin: 0 0 20px; }
.verdict { font-size: 28px; font-weight: 700; margin: 0; }
.same { color: #15803d; } .different { color: #b91c1c; } .unknown { color: #6b7280; }
.numbers { margin: 4px 0 12px; font-size: 16px; }
.numbers span { display: inline-block; margin-right: 22px; }
#figure { max-width: 100%; height: auto; border: 1px solid #e5e7eb; border-radius: 6px; }
table { border-collapse: collapse; margin-top: 12px; font-size: 14px; }
th, td { text-align: left; padding: 6px 12px 6px 0; border-bottom: 1px solid #f0f0f0; vertical-align: middle; }
th { color: #4b5563; font-weight: 600; }
img.crop { width: 96px; height: 96px; border-radius: 4px; border: 1px solid #e5e7eb; image-rendering: pixelated; }
.matches { display: flex; gap: 14px; flex-wrap: wrap; margin-top: 8px; }
.match { text-align: center; font-size: 13px; width: 112px; }
.match.below { opacity: .55; }
.face { display: flex; gap: 22px; align-items: flex-start; border-top: 1px solid #f0f0f0; padding: 12px 0; }
code { background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def data_url(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"


def img(png: bytes | None, alt: str, cls: str = "crop", id_: str | None = None) -> str:
    if png is None:
        return f'<span class="hint">({esc(alt)}: no picture)</span>'
    ident = f' id="{id_}"' if id_ else ""
    return f'<img{ident} class="{cls}" alt="{esc(alt)}" src="{data_url(png)}">'


def compare_form(select: str | None) -> str:
    options = [("", "refuse the photo"), ("largest", "use the largest face"),
               ("nearest_center", "use the face nearest the centre")]
    opts = "".join(f'<option value="{v}"{" selected" if (select or "") == v else ""}>{esc(t)}</option>'
                   for v, t in options)
    return f"""<section class="card"><h2>Compare two photos</h2>
<form id="compare-form" action="/compare" method="post" enctype="multipart/form-data">
<div class="row"><div><label for="photo1">First photo</label><input type="file" id="photo1" name="photo1" accept="image/*"></div>
<div><label for="photo2">Second photo</label><input type="file" id="photo2" name="photo2" accept="image/*"></div></div>
<label for="select">When a photo shows several faces of similar size</label>
<select id="select" name="select">{opts}</select>
<div><button id="compare-submit" type="submit">Compare</button></div>
</form></section>"""


def search_form(top_k: int, all_faces: bool, gallery_text: str) -> str:
    checked = " checked" if all_faces else ""
    return f"""<section class="card"><h2>Search the gallery</h2>
<p class="hint">{esc(gallery_text)}</p>
<form id="search-form" action="/search" method="post" enctype="multipart/form-data">
<label for="photo">Photo</label><input type="file" id="photo" name="photo" accept="image/*">
<div class="row"><div><label for="top_k">Top K</label><input type="number" id="top_k" name="top_k" min="1" max="50" value="{int(top_k)}"></div>
<div><label><input type="checkbox" id="all_faces" name="all_faces" value="1"{checked}> search every face in the photo</label></div></div>
<div><button id="search-submit" type="submit">Search</button></div>
</form></section>"""


def page(*, model_text: str, threshold_text: str, max_upload_mb: float, gallery_text: str | None,
         body: str = "", error: str | None = None, select: str | None = None, top_k: int = 5,
         all_faces: bool = False) -> str:
    """The whole page: header, the error (if any), the result (``body``), then the forms."""
    err = f'<div id="error" role="alert">{esc(error)}</div>' if error else ""
    forms = compare_form(select)
    if gallery_text is not None:
        forms += search_form(top_k, all_faces, gallery_text)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>facematch</title><style>{CSS}</style></head>
<body><header><h1>facematch</h1><p>{esc(model_text)} &middot; {esc(threshold_text)} &middot; uploads up to {max_upload_mb:g} MB</p></header>
<main>{err}{body}<div class="forms">{forms}</div></main></body></html>"""


def photo_rows(photos: Sequence, crops_png: Sequence[bytes], names: Sequence[str]) -> str:
    rows = []
    for p, crop, name in zip(photos, crops_png, names):
        f = p.faces[0]
        box = ", ".join(f"{v:.0f}" for v in f.box)
        rows.append(f"<tr><td>{esc(name)}</td><td>{p.image.width}&times;{p.image.height}</td>"
                    f"<td>{p.n_detected}</td><td class=\"box\">({box})</td><td>{f.prob:.3f}</td>"
                    f"<td>{img(crop, 'aligned crop of ' + name)}</td></tr>")
    return ("<table><tr><th>photo</th><th>size</th><th>faces detected</th><th>face box (x0, y0, x1, y1)</th>"
            "<th>detector prob.</th><th>aligned crop</th></tr>" + "".join(rows) + "</table>")


def compare_result(*, same: bool | None, similarity: float, threshold: float, threshold_text: str, figure_png: bytes,
                   photos: Sequence, crops_png: Sequence[bytes], names: Sequence[str], quality: Sequence[dict] = (),
                   quality_text: str = "") -> str:
    """``same`` None: a face's quality is below the threshold (no verdict); ``quality``: each face's scores."""
    cls, words = ("same", "same person") if same else ("different", "different people")
    if same is None:
        cls, words = "unknown", "cannot decide: face quality too low"
    op = "" if same is None else ("&ge; " if same else "&lt; ") + f"{threshold:.4g}"
    rated = ", ".join(f"{esc(n)} <b>{q['quality']:.4f}</b>" for n, q in zip(names, quality) if "quality" in q)
    rated = f'<span id="quality">face quality: {rated} ({esc(quality_text)})</span>' if rated else ""
    return f"""<section class="result" id="results"><p class="verdict {cls}" id="decision">{words}</p>
<p class="numbers"><span>similarity <b id="similarity">{similarity:.4f}</b> {op}</span>
<span id="threshold">{esc(threshold_text)}</span>{rated}</p>
{img(figure_png, "side-by-side comparison", cls="figure", id_="figure")}
{photo_rows(photos, crops_png, names)}</section>"""


def search_result(*, name: str, threshold: float, threshold_text: str, figure_png: bytes,
                  faces: Sequence[dict]) -> str:
    """``faces``: ``{"crop_png", "box", "identity", "similarity", "matches": [{"name", "similarity", "png"}]}``."""
    blocks = []
    for i, f in enumerate(faces):
        known = f["identity"] not in ("unknown", "cannot decide: face quality too low")
        matches = "".join(
            f'<div class="match{"" if m["similarity"] >= threshold else " below"}">'
            f'{img(m.get("png"), "enrolled face of " + str(m["name"]))}<div>{esc(m["name"])}</div>'
            f'<div>{m["similarity"]:.4f}</div></div>' for m in f["matches"])
        box = ", ".join(f"{v:.0f}" for v in f["box"])
        blocks.append(f"""<div class="face"><div>{img(f.get("crop_png"), f"face {i + 1}")}<div class="hint">face {i + 1} ({box})</div></div>
<div><p class="verdict {'same' if known else 'unknown'} identity" id="identity-{i + 1}">{esc(f["identity"])}</p>
<p class="numbers">best similarity <b>{f["similarity"]:.4f}</b> {'&ge;' if known else '&lt;'} {threshold:.4g}{
    f' &middot; face quality <b>{f["quality"]:.4f}</b>' if "quality" in f else ""}</p>
<div class="matches">{matches}</div></div></div>""")
    return f"""<section class="result" id="results"><p class="numbers"><span>{esc(name)}: top matches of {len(faces)} face(s)</span>
<span id="threshold">{esc(threshold_text)}</span></p>
{img(figure_png, "the photo with its faces", cls="figure", id_="figure")}
{"".join(blocks)}</section>"""
