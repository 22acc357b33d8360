"""``facematch-app [--host H] [--port P] [--gallery DIR] [model options]``: the web page of facematch.

    facematch-app                                  # http://127.0.0.1:7860/, mobilefacenet, calibrated threshold
    facematch-app --gallery galleries/staff --port 8000 --threshold 0.37

Two forms: *compare* two uploaded photos (each face box, the aligned crops, the similarity, the decision
and the threshold with where it came from, and the side-by-side picture ``facematch-compare --show``
saves) and, with ``--gallery``, *search* the gallery (the top K identities of each face, with their
enrolled crops; ``unknown`` below the threshold). The page serves the gallery's newest version: when an
enrolment or a removal has committed another one since, the next request reloads it (the page names the
version it searched). The model is loaded once at start with the model options
of ``facematch-compare`` (:mod:`facematch.app.model_args`), so missing weights or a missing calibration stop
the command with one line before anything is served.

A user's mistake (no file chosen, not an image, no face, several faces, an upload over ``--max-upload-mb``)
comes back as the page with one clear message (``id="error"``) and HTTP 400; anything unexpected as a
generic message and HTTP 500, its traceback only in the server's log.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request) at runtime.
import argparse
import logging
import os
import socket
import sys
import warnings
from pathlib import Path

from facematch.app import pages
from facematch.app.actions import (DEFAULT_MAX_UPLOAD_MB, MAX_TOP_K, SELECTS, AppState, UploadError, read_upload,
                                   run_compare, run_search)
from facematch.app.probe_model import add_probe_arguments, probe_embedder
from facematch.app.quality import add_quality_arguments, quality_gate
from facematch.app.model_args import (add_model_arguments, add_threshold_arguments, check_model_file,
                                      decision_threshold, face_embedder, load_model)
from facematch.utils.allocator import tune as tune_allocator
from facematch.errors import FacematchError, cli_errors, debug_enabled

log = logging.getLogger("facematch.app")

#: Room for the form's other fields and the multipart headers above the files themselves.
FORM_SLACK = 64 * 1024
UNEXPECTED = ("something went wrong on the server while handling these photos; the details are in the "
              "server's log. Try other photos, or report it with the log.")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facematch-app", description="Serve a web page to compare two photos "
                                "and search a gallery.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--gallery", default=None, metavar="DIR",
                   help="a gallery made by `facematch-gallery enroll` (adds the search form)")
    p.add_argument("--top-k", type=int, default=5, help="identities shown per face on a search (default: 5)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest photo accepted, in MB (default: {DEFAULT_MAX_UPLOAD_MB:g})")
    add_model_arguments(p)
    add_threshold_arguments(p)
    add_quality_arguments(p)
    add_probe_arguments(p)
    return p


def open_gallery(path: str):
    from facematch.gallery.store import Gallery

    return Gallery.open(path)


def load_state(args: argparse.Namespace) -> AppState:
    """The cheap checks first (limits, the weights file, the gallery), then the model and its threshold; a
    gallery enrolled with another model is refused here, not at the first search."""
    if not args.max_upload_mb > 0:
        raise FacematchError(f"--max-upload-mb {args.max_upload_mb:g} must be above 0")
    if not 1 <= args.top_k <= MAX_TOP_K:
        raise FacematchError(f"--top-k {args.top_k} must be between 1 and {MAX_TOP_K}")
    check_model_file(args)
    gallery = open_gallery(args.gallery) if args.gallery else None
    model = load_model(args)
    fe = face_embedder(args, model)
    probe = probe_embedder(args, fe)  # --probe-ckpt: the second photo and the photo searched embedded by it
    decision = decision_threshold(args, model, fe.settings)
    what = model.description.get("ckpt_path") or model.description.get("weights") or ""
    model_text = f"{fe.settings['arch']}" + (f" ({Path(what).name})" if what else "") + f" on {fe.settings['device']}"
    if gallery is not None:
        gallery.check_model(model.fingerprint, fe.settings)
    search = decision_threshold(args, model, fe.settings, search=True) if gallery is not None else None
    if probe is not None:
        model_text += f"; probe side (second photo, photo searched): {Path(args.probe_ckpt).name}"
    return AppState(fe, decision, model_text, gallery, float(args.max_upload_mb), int(args.top_k),
                    search_decision=search, quality=quality_gate(args, model), probe=probe)


# ---------------------------------------------------------------------------------------------------
# the web app

def create_app(state: AppState):
    """The FastAPI application serving ``state`` (tests run it with TestClient or a uvicorn thread)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, RedirectResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="facematch", docs_url=None, redoc_url=None, openapi_url=None)

    def render(body: str = "", error: str | None = None, status: int = 200, **form) -> HTMLResponse:
        html = pages.page(model_text=state.model_text, threshold_text=state.decision["text"],
                          max_upload_mb=state.max_upload_mb, gallery_text=state.gallery_text, body=body,
                          error=error, top_k=form.pop("top_k", state.top_k), **form)
        return HTMLResponse(html, status_code=status)

    async def handle(request: Request, n_files: int, work, remember) -> HTMLResponse:
        """Parse the form, run ``work(form)`` in a worker thread; every failure becomes the page with a
        message, the form's choices (``remember(form)``) kept."""
        kept: dict = {}
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > n_files * state.max_upload_bytes + FORM_SLACK:
            return render(error=f"the upload is larger than the {state.max_upload_mb:g} MB limit per photo; "
                                "use smaller photos", status=400)
        try:
            async with request.form(max_files=n_files, max_fields=8) as form:
                kept = remember(form)
                return render(await run_in_threadpool(work, form), **kept)
        except FacematchError as err:
            return render(error=str(err), status=400, **kept)
        except Exception as err:  # noqa: BLE001: the page never shows a traceback
            if getattr(err, "status_code", None) == 400:  # Starlette's malformed multipart body
                return render(error=f"the upload could not be read ({getattr(err, 'detail', err)})", status=400)
            log.exception("facematch-app: %s %s failed", request.method, request.url.path)
            return render(error=UNEXPECTED, status=500, **kept)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        try:
            state.current_gallery()
        except FacematchError as err:  # the gallery was damaged or re-enrolled with another model meanwhile
            return render(error=str(err), status=400)
        return render()

    @app.get("/compare")
    @app.get("/search")
    def back_to_index():
        return RedirectResponse("/", status_code=303)

    def compare_choices(form) -> dict:
        value = str(form.get("select") or "")
        return {"select": value if value in SELECTS else None}

    @app.post("/compare", response_class=HTMLResponse)
    async def compare(request: Request) -> HTMLResponse:
        def work(form) -> str:
            uploads = [read_upload(form, "photo1", "the first photo", state),
                       read_upload(form, "photo2", "the second photo", state)]
            return run_compare(state, uploads, compare_choices(form)["select"])

        return await handle(request, 2, work, compare_choices)

    def search_choices(form) -> dict:
        try:
            top_k = int(str(form.get("top_k") or state.top_k))
        except ValueError:
            top_k = 0
        return {"top_k": top_k, "all_faces": bool(form.get("all_faces"))}

    @app.post("/search", response_class=HTMLResponse)
    async def search(request: Request) -> HTMLResponse:
        if state.gallery is None:
            return render(error="no gallery is loaded: start facematch-app with --gallery DIR to search one",
                          status=400)

        def work(form) -> str:
            kept = search_choices(form)
            if not 1 <= kept["top_k"] <= MAX_TOP_K:
                raise UploadError(f"top K must be a whole number from 1 to {MAX_TOP_K}")
            return run_search(state, read_upload(form, "photo", "the photo to search", state), kept["top_k"],
                              kept["all_faces"])

        return await handle(request, 1, work, search_choices)

    return app


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening socket for ``host:port``, or one line saying why not (the port is taken...)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=64)
    except (OSError, OverflowError) as err:
        why = os.strerror(err.errno) if getattr(err, "errno", None) else str(err)
        raise FacematchError(f"cannot listen on {host}:{port} ({why}); "
                             "pick another --port or --host") from None


def make_server(app, log_level: str = "warning"):
    """The uvicorn Server of ``app``; ``.run(sockets=[sock])`` serves until interrupted (tests run it in a
    thread and stop it with ``should_exit``)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level))


@cli_errors
def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    args = build_parser().parse_args(argv)
    if not debug_enabled():
        warnings.filterwarnings("ignore")
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise FacematchError(f"facematch-app needs the 'app' extra ({err.name} is not installed): "
                             "uv sync --all-extras, or pip install 'facematch[app]'") from None
    sock = listening_socket(args.host, args.port)  # a taken port fails before the model loads
    try:
        state = load_state(args)
    except BaseException:
        sock.close()
        raise
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"facematch-app: http://{host}:{sock.getsockname()[1]}/  ({state.model_text}; {state.decision['text']}"
          + (f"; {state.gallery_text}" if state.gallery_text else "") + ")", flush=True)
    make_server(create_app(state)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
