"""``ganscope serve``: explore run folders' latent spaces live in the browser.

A FastAPI app serves one static page (``assets/explorer.html``: plain HTML, CSS and JS, no CDN,
no build step) and a small JSON API over the same Python functions the CLI uses: ``load_run``,
``Run.generator_at``, ``sampling.generate`` / ``latent`` / ``interpolate``, the classifier and
the analysis record. Clients name runs by index and epochs by number, never by path; every
request is validated (pydantic models and the checks below) and a bad one gets a JSON 4xx that
says what is wrong. The server writes nothing.
"""

from __future__ import annotations

import base64
import errno
import math
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
from pydantic import BaseModel

from .batching import Batcher
from .boundaries import Boundary, boundary_directions
from .classifier import classify, load_classifier
from .config import option
from .data import get_dataset, to_uint8
from .devices import resolve_device
from .directions import closed_form_directions
from .errors import GanscopeError
from .gallery import traversal_figures
from .models import display_name
from .options import MAX_ABS_DELTA, MAX_SEED, Checked, device_option, resolve
from .plots import make_grid, png_bytes
from .pretrained import default_runs
from .progress import warn
from .readings import is_complete
from .runs import load_run
from .sampling import INTERPOLATIONS, generate, interpolate, latent
from .text import describe
from .web_requests import (
    ApiError,
    GenerateRequest,
    InterpolateRequest,
    LatentRequest,
    TraverseRequest,
)

#: Latent values a client may send: z ~ N(0, 1), shifted by at most MAX_ABS_DELTA.
MAX_ABS_Z = MAX_ABS_DELTA + 10
#: Request bodies larger than this are refused (a z of 100 floats is about 2 KB).
MAX_BODY_BYTES = 64 * 1024
#: Generators kept in memory (run, epoch); the least recently used goes first.
CACHED_GENERATORS = 32


@dataclass(frozen=True)
class ServeOptions(Checked):
    """explore runs' latent spaces live in the browser

    Start a local web page over the run folders named: one slider per latent dimension
    (labelled with the analysis's readings) and per SeFa direction, the image and the
    classifier's probabilities as you drag, an epoch scrubber, two runs side by side, an
    interpolation strip and the report's three-row figure; for a conditional run a class
    picker and a row of every class from the same z. The URL keeps the view. Serves
    127.0.0.1 unless --host says otherwise; writes nothing.
    """

    host: str = option(
        "127.0.0.1",
        "address to listen on (another than 127.0.0.1 is reachable from other machines)",
    )
    port: int = option(8000, "port to listen on", minimum=1, maximum=65535)
    device: str = device_option()


# -- the runs being served --------------------------------------------------------------------
@dataclass
class ServedRun:
    """One run folder: its description for the page, and its directions as tensors."""

    run: Any
    info: dict[str, Any]
    directions: list[torch.Tensor]


def _directions(generator, record: dict[str, Any]) -> tuple[list[torch.Tensor], list[dict]]:
    """SeFa's and GANSpace's directions, recomputed exactly as the analysis labelled them, then
    the classifier boundaries' ("towards Sneaker", "towards Sneaker, keeping Sandal")."""
    found, listed = [], []
    for kind in ("sefa", "pca"):
        rows = record.get(f"{kind}_rows") or []
        if rows:
            computed = closed_form_directions(kind, generator, len(rows), record["seed"])
            found += [d.vector for d in computed]
        listed += [{"name": row["direction"], "label": f"{row['minus_class']} ↔ "
                    f"{row['plus_class']}", "strength": round(float(row["strength"]), 3)}
                   for row in rows]  # fmt: skip
    boundaries = [Boundary.from_record(entry) for entry in record.get("boundaries") or []]
    for direction in boundary_directions(boundaries):
        found.append(direction.vector)
        listed.append({"name": direction.name, "label": "classifier boundary", "strength": None})
    return found, listed


def _describe_run(index: int, run, device: str, classes: list[str]) -> ServedRun:
    generator, epoch = run.generator_at(None, device)
    z_dim = run.config.model.z_dim
    record = run.analysis_record()
    readings: dict[int, dict[str, Any]] = {}
    listed: list[dict[str, Any]] = []
    directions: list[torch.Tensor] = []
    names = get_dataset(run.config.data.dataset).class_names("en")
    if is_complete(record):
        delta = record["deltas"][0]
        for row in record["rows"]:
            if row["dim"] is not None and row["delta"] == delta and 0 <= row["dim"] < z_dim:
                readings[row["dim"]] = {
                    "label": f"{row['minus_class']} ↔ {row['plus_class']}",
                    "strength": round(float(row["strength"]), 3),
                    "sentence": describe(row, "en", names),
                }
        directions, listed = _directions(generator, record)
    order = sorted(
        range(z_dim), key=lambda d: (-readings[d]["strength"] if d in readings else 1, d)
    )
    info = {
        "id": index,
        "name": run.path.name,
        "model": display_name(run.config.model.name),
        "z_dim": z_dim,
        "epoch": epoch,
        "epochs": run.generator_epochs(),
        "dims": [{"dim": d, **readings.get(d, {})} for d in order],
        "directions": listed,
        "classes": classes,
        # a conditional run's class picker: the dataset's class names, else empty
        "labels": list(names) if run.config.model.conditional else [],
    }
    return ServedRun(run, info, directions)


class Explorer:
    """The state of a server: its runs, the classifier, cached generators. Thread-safe."""

    def __init__(self, run_dirs: list[str], device: str = "cpu") -> None:

        if not run_dirs:
            raise GanscopeError("give at least one run folder")
        self.device = str(resolve_device(device))
        self.classifier = load_classifier(device=self.device)
        classes = list(self.classifier.meta["classes"])
        self.runs = [
            _describe_run(i, load_run(path), self.device, classes)
            for i, path in enumerate(run_dirs)
        ]
        self._generators: OrderedDict[tuple[int, int | None], torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.batcher = Batcher(self._forward)

    # -- checks shared by the endpoints ------------------------------------------------------
    def served(self, index: int) -> ServedRun:
        if not 0 <= index < len(self.runs):
            raise ApiError(
                404, f"unknown run {index}; this server has runs 0..{len(self.runs) - 1}"
            )
        return self.runs[index]

    def generator(self, index: int, epoch: int | None) -> torch.nn.Module:
        served = self.served(index)
        if epoch is not None and epoch not in served.info["epochs"]:
            raise ApiError(
                404,
                f"run {index} has no generator for epoch {epoch}; it has {served.info['epochs']}",
            )
        key = (index, epoch)
        with self._lock:
            if key not in self._generators:
                self._generators[key] = served.run.generator_at(epoch, self.device)[0]
                if len(self._generators) > CACHED_GENERATORS:
                    self._generators.popitem(last=False)
            self._generators.move_to_end(key)
            return self._generators[key]

    def latent_vector(self, index: int, z: list[float]) -> torch.Tensor:
        z_dim = self.served(index).info["z_dim"]
        if len(z) != z_dim:
            raise ApiError(422, f"z has {len(z)} values; run {index} takes {z_dim}")
        if not all(math.isfinite(v) and abs(v) <= MAX_ABS_Z for v in z):
            raise ApiError(422, f"z values must be finite numbers within ±{MAX_ABS_Z:g}")
        return torch.tensor(z, dtype=torch.float32).unsqueeze(0)  # (1, z_dim)

    def labels(self, index: int, labels: list[int] | None, n: int) -> torch.Tensor | None:
        """``n`` labels for run ``index``: ``labels`` (one, or one per image) checked
        against its classes; None for an unconditional run, which refuses any."""
        names = self.served(index).info["labels"]
        if not names:
            if labels is not None:
                raise ApiError(422, f"run {index} is unconditional: it takes no class")
            return None
        if labels is None:
            raise ApiError(422, f"run {index} is conditional: give the class (label)")
        if not all(0 <= label < len(names) for label in labels):
            raise ApiError(422, f"classes must be in 0..{len(names) - 1}")
        return torch.tensor(labels).expand(n) if len(labels) == 1 else torch.tensor(labels)

    # -- the work ---------------------------------------------------------------------------
    def generate(self, request: GenerateRequest) -> dict[str, Any]:

        served = self.served(request.run)
        z = self.latent_vector(request.run, request.z)
        for index, amount in request.directions.items():
            if not 0 <= index < len(served.directions):
                raise ApiError(422, f"run {request.run} has no direction {index}")
            if not (math.isfinite(amount) and abs(amount) <= MAX_ABS_DELTA):
                raise ApiError(422, f"direction shifts must be within ±{MAX_ABS_DELTA:g}")
            z = z + amount * served.directions[index].unsqueeze(0)
        asked = None if request.label is None else [request.label]
        labels = self.labels(request.run, asked, 1)
        self.generator(request.run, request.epoch)  # a missing epoch is refused here
        # concurrent requests for one generator share a forward pass (``batching``)
        image, probs, row = self.batcher.submit((request.run, request.epoch), (z, labels))
        answer = {"image": _png_uri(image), "probs": [round(float(p), 5) for p in probs]}
        if row is not None:
            answer["row"] = _grid_uri(row, len(row))
        return answer

    def _forward(self, key: tuple[int, int | None], items: list) -> list[tuple]:
        """The images and class probabilities of a batch of ``generate`` requests (and for a
        conditional run, each request's row of every class from its z)."""
        generator = self.generator(*key)
        z = torch.cat([z for z, _ in items])
        labels = None if items[0][1] is None else torch.cat([labels for _, labels in items])
        with self._lock:  # one forward pass at a time: torch's threads are shared
            images = generate(generator, z, labels=labels)  # (B, 1, 28, 28)
            probs = classify(self.classifier, images)
            rows = [None] * len(items)
            if labels is not None:  # every class from the same z: (C, 1, 28, 28) each
                count = len(self.served(key[0]).info["labels"])
                every = generate(generator, z.repeat_interleave(count, 0),
                                 labels=torch.arange(count).repeat(len(items)))  # fmt: skip
                rows = list(every.split(count))
        return [(images[i : i + 1], probs[i], rows[i]) for i in range(len(items))]

    def latent(self, request: LatentRequest) -> dict[str, Any]:

        z_dim = self.served(request.run).info["z_dim"]
        return {"z": latent(1, z_dim, request.seed)[0].tolist()}

    def interpolate(self, request: InterpolateRequest) -> dict[str, Any]:

        if request.method not in INTERPOLATIONS:
            raise ApiError(
                422, f"unknown method {request.method!r}; choose {', '.join(INTERPOLATIONS)}"
            )
        for seed in request.seeds:
            if not 0 <= seed <= MAX_SEED:
                raise ApiError(422, f"seeds must be in 0..{MAX_SEED}")
        z_dim = self.served(request.run).info["z_dim"]
        generator = self.generator(request.run, request.epoch)
        a, b = (latent(1, z_dim, seed) for seed in request.seeds)
        ends = self.labels(request.run, request.labels and list(request.labels), 2)
        classes = None if ends is None else (int(ends[0]), int(ends[1]))
        with self._lock:
            images = interpolate(generator, a, b, request.steps, request.method, classes)
        return {"image": _grid_uri(images, request.steps)}

    def traverse(self, request: TraverseRequest) -> dict[str, Any]:

        z_dim = self.served(request.run).info["z_dim"]
        if request.dim >= z_dim:
            raise ApiError(
                422, f"dimension {request.dim} is out of range: valid are 0..{z_dim - 1}"
            )
        z = self.latent_vector(request.run, request.z)
        asked = None if request.label is None else [request.label]
        labels = self.labels(request.run, asked, 1)
        generator = self.generator(request.run, request.epoch)
        with self._lock:
            figure = traversal_figures(generator, [request.dim], request.delta, z, labels=labels)[
                request.dim
            ]
        return {"image": "data:image/png;base64," + base64.b64encode(png_bytes(figure)).decode()}


def _grid_uri(images: torch.Tensor, nrow: int) -> str:
    """Images ``(N, 1, 28, 28)`` in [-1, 1] as one PNG row of ``nrow``, a data URI."""
    grid = make_grid(to_uint8(images), nrow=nrow, scale=2)
    return "data:image/png;base64," + base64.b64encode(png_bytes(grid)).decode()


def _png_uri(image: torch.Tensor) -> str:

    pixels = to_uint8(image)[0].numpy()  # (28, 28) uint8
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode()


#: POST /api/<name>: its request body; ``Explorer.<name>`` answers it.
ENDPOINTS = {
    "generate": GenerateRequest,
    "latent": LatentRequest,
    "interpolate": InterpolateRequest,
    "traverse": TraverseRequest,
}


def _endpoint(method, model: type[BaseModel]):
    def endpoint(request) -> dict[str, Any]:
        return method(request)

    # FastAPI reads the body's model from the annotation.
    endpoint.__annotations__ = {"request": model, "return": dict[str, Any]}
    return endpoint


def page() -> str:
    return (resources.files("ganscope") / "assets" / "explorer.html").read_text(encoding="utf-8")


#: Host names a page on this machine reaches the explorer by; another ``Host`` header (a page
#: from elsewhere that rebinds its DNS name to 127.0.0.1) is refused unless ``--host`` serves
#: other machines.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port: ``[::1]:8000`` -> ``::1``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def create_app(explorer: Explorer, allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES):
    """The FastAPI app over ``explorer``; requests naming another host than
    ``allowed_hosts`` (None: any) are refused."""
    # FastAPI and uvicorn load only for the command that serves
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(title="ganscope explorer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def cap_body(request: Request, call_next):
        host = host_name(request.headers.get("host", "")).lower()
        if allowed_hosts is not None and host not in allowed_hosts:
            return JSONResponse({"detail": f"host {host!r} is not served here"}, 421)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, 413)
        try:
            return await call_next(request)
        except Exception as error:  # noqa: BLE001 - a client must never see a traceback
            return JSONResponse({"detail": f"internal error ({type(error).__name__})"}, 500)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return JSONResponse({"detail": str(error)}, error.status)

    @app.exception_handler(GanscopeError)
    async def user_error(request: Request, error: GanscopeError):
        return JSONResponse({"detail": str(error)}, 422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
            for e in error.errors()
        ]
        return JSONResponse({"detail": "; ".join(problems[:5])}, 422)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page()

    @app.get("/api/runs")
    def runs() -> list[dict[str, Any]]:
        return [served.info for served in explorer.runs]

    for name, model in ENDPOINTS.items():
        app.add_api_route(
            f"/api/{name}", _endpoint(getattr(explorer, name), model), methods=["POST"]
        )

    return app


def serve(run_dirs: list[str], options: ServeOptions | None = None, **overrides: Any) -> None:
    """Start the explorer on ``options.host:options.port`` until interrupted."""
    import uvicorn  # only for the command that serves

    opts = resolve(ServeOptions, options, overrides)
    # One image per request is too small to share between threads; one thread per forward
    # pass leaves the other cores to the server's other requests and to the browser.
    torch.set_num_threads(1)
    explorer = Explorer([str(p) for p in run_dirs or default_runs()], opts.device)
    loopback = opts.host in LOOPBACK_NAMES
    if not loopback:
        warn(f"serving on {opts.host}: other machines can reach this page; the runs are read-only")
    listening = _listen(opts.host, opts.port)  # before the address is announced
    print(f"ganscope explorer: http://{opts.host}:{opts.port}/ (Ctrl-C stops it)", flush=True)
    app = create_app(explorer, LOOPBACK_NAMES if loopback else None)
    config = uvicorn.Config(app, host=opts.host, port=opts.port, log_level="warning")
    with listening:
        uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or a one-line error saying why not (e.g. in use)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, proto)
    except OSError as error:
        raise GanscopeError(f"cannot serve on {host}:{port} ({error.strerror or error})") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(128)
    except OSError as error:
        listening.close()
        hint = "; choose another --port" if error.errno == errno.EADDRINUSE else ""
        raise GanscopeError(
            f"cannot serve on {host}:{port} ({error.strerror or error}){hint}"
        ) from None
    return listening
