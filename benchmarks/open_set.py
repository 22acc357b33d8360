"""Open-set identification on LFW raw photos through the gallery's own enrol and search path.

    .venv/bin/python benchmarks/open_set.py                     # writes benchmarks/results/open_set.json
    .venv/bin/python benchmarks/open_set.py --max-people 50 --out /tmp/open_set.json     # a quick check

Protocol (issue 13): the gallery holds the first photo (by file name) of each of the 1,680 LFW people with
2+ photos, enrolled with :func:`facematch.gallery.enroll.enroll_folder` (the ``facematch-gallery enroll``
path: MTCNN, 5-point alignment, MobileFaceNet, flip concat). Known probes: those people's other photos;
impostor probes: every photo of the 4,069 people with a single photo. Each probe is detected and embedded
by the same :class:`~facematch.embedding.photos.FaceEmbedder` (in batches, as enrolment) and searched
with :meth:`Gallery.search <facematch.gallery.store.Gallery.search>` (exact index). Figures
(:mod:`facematch.eval.open_set`): Rank-1 (and Rank-5) of the known probes, DIR at FAR 1e-2 and 1e-3
(thresholds set on the impostors' top scores), and DIR / FAR at the model's calibrated 1:1 threshold (what
``facematch-gallery search`` answers "unknown" below).

Which face of a photo: ``--select nearest_center`` by default, the rule the project uses for datasets
that centre their subject (``conf/align/mtcnn.yaml``; LFW's 250x250 photos often show other faces of
similar size near the border, which the practitioner default refuses: ~10% of LFW photos);
``--select none`` measures the CLI default (enrol and search without ``--select``).

Photos where no usable face is found (no face, several of similar size, unreadable) are counted per group
and left out of the rates; ``rank_1_failures_as_misses`` counts the known ones as misses. A known person
whose gallery photo fails to enrol is left out with their probes (counted).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facematch.utils.allocator import tune  # noqa: E402  (allocator settings first)

tune()

from facematch.app.model_args import (add_model_arguments, add_threshold_arguments, decision_threshold,  # noqa: E402
                                      face_embedder, load_model)
from facematch.errors import FacematchError  # noqa: E402
from facematch.eval.open_set import open_set_report  # noqa: E402
from facematch.faces.images import list_images  # noqa: E402
from facematch.gallery.enroll import enroll_folder, failure_reason  # noqa: E402
from facematch.gallery.store import Gallery  # noqa: E402
from facematch.paths import data_dir  # noqa: E402
from facematch.utils.hardware import machine_info  # noqa: E402
from facematch.report.provenance import stamp  # noqa: E402
from facematch.utils.io import atomic_write_text  # noqa: E402

CHUNK = 64


def split(root: Path, max_people: int | None):
    """``(gallery {name: photo}, known probes [(name, photo)], impostor probes [photo])``, all absolute."""
    by_person: dict[str, list[str]] = {}
    for rel in list_images(root):
        name, _, _ = rel.partition("/")
        by_person.setdefault(name, []).append(str(root / rel))
    multi = sorted(n for n, p in by_person.items() if len(p) >= 2)
    single = sorted(n for n, p in by_person.items() if len(p) == 1)
    if max_people:  # the same proportion of impostor people as in the full protocol
        single = single[: max(1, round(max_people * len(single) / max(1, len(multi))))]
        multi = multi[:max_people]
    gallery = {n: sorted(by_person[n])[0] for n in multi}
    known = [(n, p) for n in multi for p in sorted(by_person[n])[1:]]
    impostors = [by_person[n][0] for n in single]
    return gallery, known, impostors


def search_probes(fe, gallery: Gallery, paths: list[str], top_k: int, desc: str, select: str | None):
    """``(results [top-k list or None], failures {reason: n})`` for each probe photo."""
    from tqdm import tqdm

    results: list = []
    failed: dict[str, int] = {}
    with tqdm(total=len(paths), unit="photo", desc=desc, file=sys.stderr) as bar:
        for start in range(0, len(paths), CHUNK):
            found = list(fe.photos(paths[start: start + CHUNK], select=select))
            good = [pf for pf in found if not isinstance(pf, FacematchError)]
            embs = fe.embed(good)
            hits = iter(gallery.search(np.concatenate([e[:1] for e in embs]), top_k) if good else [])
            for pf in found:
                if isinstance(pf, FacematchError):
                    failed[failure_reason(pf)] = failed.get(failure_reason(pf), 0) + 1
                    results.append(None)
                else:
                    results.append(next(hits))
            bar.update(len(found))
    return results, failed


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(ap)
    add_threshold_arguments(ap)
    ap.add_argument("--root", default=str(data_dir() / "lfw" / "lfw-deepfunneled"))
    ap.add_argument("--max-people", type=int, default=None, help="only the first N people with 2+ photos (quick check)")
    ap.add_argument("--select", choices=("none", "largest", "nearest_center"), default="nearest_center",
                    help="face selection in every photo (default: nearest_center, the dataset rule; none: the CLI default)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "open_set.json"))
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    select = None if args.select == "none" else args.select
    t_start, load = time.perf_counter(), os.getloadavg()
    root = Path(args.root).expanduser().resolve()
    gallery_photos, known, impostors = split(root, args.max_people)
    model = load_model(args)
    fe = face_embedder(args, model)
    try:
        decision = decision_threshold(args, model, fe.settings)
    except FacematchError as err:
        decision = {"threshold": None, "text": f"none ({err})"}
    timings = {}
    with tempfile.TemporaryDirectory(prefix="open_set_") as tmp, torch.no_grad():
        people = Path(tmp) / "people"
        for name, photo in gallery_photos.items():
            (people / name).mkdir(parents=True)
            (people / name / Path(photo).name).symlink_to(photo)
        gallery = Gallery.create(Path(tmp) / "gallery", model.fingerprint, fe.settings)
        t0 = time.perf_counter()
        enrolled = enroll_folder(fe, gallery, people, select=select)
        timings["enroll_s"] = round(time.perf_counter() - t0, 1)
        in_gallery = set(gallery.names)
        n_known_all = len(known)
        known = [(n, p) for n, p in known if n in in_gallery]
        t0 = time.perf_counter()
        known_hits, known_failed = search_probes(fe, gallery, [p for _, p in known], 5, "known probes", select)
        imp_hits, imp_failed = search_probes(fe, gallery, impostors, 1, "impostor probes", select)
        timings["probes_s"] = round(time.perf_counter() - t0, 1)
    ok = [(n, h) for (n, _), h in zip(known, known_hits) if h is not None]
    known_top = np.array([h[0]["similarity"] for _, h in ok])
    correct = np.array([h[0]["name"] == n for n, h in ok])
    imp_top = np.array([h[0]["similarity"] for h in imp_hits if h is not None])
    figures = open_set_report(known_top, correct, imp_top, fars=(1e-2, 1e-3), threshold=decision["threshold"])
    figures["rank_5"] = float(np.mean([n in [m["name"] for m in h[:5]] for n, h in ok]))
    figures["rank_1_failures_as_misses"] = float(correct.sum() / max(1, len(known)))
    payload = {
        "what": "open-set identification on LFW deep-funneled photos (gallery: first photo of each person with 2+ "
                "photos; probes: their other photos + every photo of the people with one photo as impostors)",
        "figures": figures,
        "threshold_used": decision["text"],
        "counts": {"gallery_people": len(gallery_photos), "gallery_enrolled": enrolled["faces"],
                   "known_probes": len(known),
                   "known_probes_dropped_gallery_failed": n_known_all - len(known), "impostor_probes": len(impostors),
                   "known_probes_searched": int(len(ok)), "impostor_probes_searched": int(len(imp_top))},
        "failures": {"gallery": enrolled["failed"], "known_probes": known_failed, "impostor_probes": imp_failed,
                     "gallery_photos": ["/".join(Path(f["path"]).parts[-2:]) for f in enrolled["failures"]]},
        "settings": {"model": model.description.get("weights") or model.description.get("ckpt_path"),
                     "fingerprint": model.fingerprint, **fe.settings, "index": "flat", "select": args.select,
                     "max_people": args.max_people, "torch_threads": torch.get_num_threads()},
        "timings": timings,
        "machine": {**machine_info(), "loadavg_before": [round(v, 2) for v in load]},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    payload["provenance"] = stamp("python " + " ".join(sys.argv))  # command, commit, machine
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    d = figures["dir_at_far"]
    print(f"Rank-1 {figures['rank_1']:.4f}, DIR@FAR1e-2 {d['1e-2']['dir']:.4f}, DIR@FAR1e-3 {d['1e-3']['dir']:.4f} "
          f"({len(ok)} known, {len(imp_top)} impostor probes; {payload['wall_s']} s); wrote {args.out}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()
