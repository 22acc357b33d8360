"""``facematch-gallery``: enrol people from a folder, then ask who is in a photo (1:N search).

    facematch-gallery enroll people/ --out my_gallery            # people/<name>/<photo>; re-run to add more
    facematch-gallery search photo.jpg --gallery my_gallery [--top 5] [--json] [--all-faces]
    facematch-gallery remove "Jane Doe" --gallery my_gallery
    facematch-gallery list --gallery my_gallery [--json]

``enroll`` (:mod:`facematch.gallery.enroll`): one subfolder per person, one face per photo, through the
one detect / align / embed path (:class:`~facematch.embedding.photos.FaceEmbedder`); incremental (photos
already enrolled, same size and mtime, are skipped); bad photos are counted by reason and skipped, never
fatal (``--failures FILE`` lists them). The gallery records the model; ``search`` takes the same model
options and refuses another model. ``--index flat|hnsw|ivf`` (faiss; exact by default) is stored at
enrolment and may be overridden at search.

``search`` (:func:`facematch.gallery.search.search_photo`): each face's best identities with their
cosine similarity; the face is that identity when the similarity is at least the model's calibrated
threshold (``facematch-calibrate``; printed with its FAR and TAR; ``--threshold`` overrides it), else
``unknown``. ``--json`` prints one JSON object per photo and line.

Errors are one ``error: ...`` line on stderr and an exit code (as ``facematch-compare``), no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from facematch.app.probe_model import add_probe_arguments, probe_embedder
from facematch.app.quality import add_quality_arguments, quality_gate
from facematch.app.model_args import (add_model_arguments, add_threshold_arguments, check_model_file,
                                      decision_threshold, face_embedder, load_model)
from facematch.errors import DataNotFoundError, FacematchError, cli_errors
from facematch.utils.allocator import tune as tune_allocator
from facematch.gallery.index import INDEX_KINDS
from facematch.gallery.store import LOCK_TIMEOUT_S

SELECT = ("largest", "nearest_center")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facematch-gallery",
                                description="Enrol people from a folder into a face gallery and search photos against it.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{enroll,search,remove,list}")

    e = sub.add_parser("enroll", help="add a folder of people (DIR/<name>/<photos>) to a gallery")
    e.add_argument("dir", help="folder with one subfolder of photos per person")
    e.add_argument("--out", required=True, metavar="GALLERY", help="gallery folder (created, or added to)")
    e.add_argument("--index", choices=INDEX_KINDS, default=None,
                   help="faiss index searched: flat (exact, default) | hnsw | ivf (approximate, large galleries)")
    e.add_argument("--select", choices=SELECT, default=None,
                   help="which face of a photo with several faces of similar size (default: skip such photos)")
    e.add_argument("--failures", default=None, metavar="FILE", help="also write the failed photos as a TSV")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_lock_argument(e)
    add_model_arguments(e)

    s = sub.add_parser("search", help="who is in these photos")
    s.add_argument("photos", nargs="+", metavar="PHOTO")
    s.add_argument("--gallery", required=True)
    s.add_argument("--top", type=int, default=5, metavar="K", help="candidates listed per face (default: 5)")
    s.add_argument("--json", action="store_true", help="one JSON object per photo and line")
    s.add_argument("--all-faces", action="store_true", help="search every face of the photo")
    s.add_argument("--select", choices=SELECT, default=None,
                   help="which face when a photo has several of similar size (default: refuse it, exit 4)")
    s.add_argument("--index", choices=INDEX_KINDS, default=None, help="override the gallery's index for this search")
    add_model_arguments(s)
    add_probe_arguments(s)
    add_threshold_arguments(s)
    add_quality_arguments(s)

    r = sub.add_parser("remove", help="delete a person from a gallery")
    r.add_argument("name")
    r.add_argument("--gallery", required=True)
    add_lock_argument(r)

    ls = sub.add_parser("list", help="the people in a gallery")
    ls.add_argument("--gallery", required=True)
    ls.add_argument("--json", action="store_true")
    return p


def add_lock_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-timeout", type=float, default=LOCK_TIMEOUT_S, metavar="SECONDS",
                   help="how long to wait while another process writes the gallery (default: %(default)g)")


def _model(args):
    check_model_file(args)
    model = load_model(args)
    return model, face_embedder(args, model)


def cmd_enroll(args) -> int:
    from facematch.gallery.enroll import enroll_folder, summary_text
    from facematch.gallery.store import Gallery

    if not os.path.isdir(args.dir):
        raise DataNotFoundError(f"folder not found: {args.dir} (enroll expects DIR/<person>/<photos>)")
    existing = Gallery.existing(args.out)  # a damaged gallery or a folder in use fails before the model loads
    model, fe = _model(args)
    gallery = Gallery.open_or_new(args.out, model.fingerprint, fe.settings, index=args.index, known=existing)
    gallery.lock_timeout = args.lock_timeout
    summary = enroll_folder(fe, gallery, args.dir, select=args.select, progress=not args.no_progress,
                            failures_tsv=args.failures)
    print(summary_text(summary))
    return 0


def cmd_search(args) -> int:
    from facematch.gallery.search import search_photo
    from facematch.gallery.store import Gallery

    gallery = Gallery.open(args.gallery)  # before the model: a wrong path fails fast
    if args.index:
        gallery.index_kind = args.index
    if args.top < 1:
        raise FacematchError(f"--top {args.top}: give at least 1")
    model, fe = _model(args)
    gallery.check_model(model.fingerprint, fe.settings)
    probe = probe_embedder(args, fe)  # --probe-ckpt: the photos searched embedded by a model for small faces
    decision = decision_threshold(args, model, fe.settings, search=True)
    gate = quality_gate(args, model)
    if not args.json:
        print(f"{decision['text']}; gallery {args.gallery}: {len(gallery.names)} people, {len(gallery)} faces; "
              f"{gate.text}")
    if len(args.photos) == 1:  # one photo: its error is the command's (one line, its exit code)
        print_result(search_photo(fe, gallery, args.photos[0], top_k=args.top, threshold=decision,
                                  select=args.select, all_faces=args.all_faces, quality=gate, probe_embedder=probe),
                     args.json)
        return 0
    code = 0
    for path in args.photos:  # several: a bad one is reported in its place, the others still searched
        try:
            r = search_photo(fe, gallery, path, top_k=args.top, threshold=decision, select=args.select,
                             all_faces=args.all_faces, quality=gate, probe_embedder=probe)
        except FacematchError as err:
            code = err.exit_code
            r = {"photo": path, "error": str(err)}
        print_result(r, args.json)
    return code


def print_result(r: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(r))
        return
    if "error" in r:
        print(f"{r['photo']}: failed: {r['error']}")
        return
    print(f"{r['photo']}: {len(r['faces'])} face(s) searched ({r['n_detected']} detected)")
    for n, f in enumerate(r["faces"], 1):
        x0, y0, x1, y1 = (int(round(v)) for v in f["box"])
        sim = "" if f["similarity"] is None else f" {f['similarity']:.4f}"
        rated = f" (quality {f['quality']:.4f})" if "quality" in f else ""
        print(f"  face {n} at ({x0},{y0})-({x1},{y1}): {f['identity']}{sim}{rated}")
        for rank, m in enumerate(f["matches"], 1):
            print(f"    {rank}. {m['similarity']:.4f}  {m['name']}")


def cmd_remove(args) -> int:
    from facematch.gallery.store import Gallery

    gallery = Gallery.open(args.gallery)
    gallery.lock_timeout = args.lock_timeout
    n = gallery.remove(args.name)
    print(f"removed {args.name} ({n} face{'s' if n != 1 else ''}) from {args.gallery}")
    return 0


def cmd_list(args) -> int:
    from facematch.gallery.store import Gallery

    g = Gallery.open(args.gallery)
    counts = g.counts()
    if args.json:
        print(json.dumps({"gallery": str(g.root), "model": g.manifest["model"], "index": g.index_kind,
                          "people": counts}))
        return 0
    s = g.manifest["model"]["settings"]
    print(f"{g.root}: {len(counts)} people, {len(g)} faces; {s.get('arch')} (weights sha256 "
          f"{g.manifest['model']['fingerprint'][:12]}..., flip {s.get('flip')}), index {g.index_kind}")
    for name, n in counts.items():
        print(f"  {name}\t{n}")
    return 0


COMMANDS = {"enroll": cmd_enroll, "search": cmd_search, "remove": cmd_remove, "list": cmd_list}


@cli_errors
def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
