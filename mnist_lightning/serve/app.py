"""The LitServe app: ``POST /predict``, ``POST /corrections``, LitServe's ``GET /health`` and ``GET /info``, and the
page at ``/``.

The API server (FastAPI, in the main process) reads and unpacks request bodies (:mod:`.body`); inference
workers (processes LitServe spawns) load the model once, decode and preprocess images with
:func:`mnist_lightning.preprocessing.preprocess` and run the model, batched when ``max_batch_size > 1``.

An image that cannot be read as a digit is answered per request with a 422 built in ``encode_response``
rather than by raising: LitServe's batched loop fails every request of a batch when one request raises. So is
an image that takes longer than the server's time budget to read (``image_timeout``, see :mod:`.budget`).

``POST /corrections`` (only with ``--collect DIR``, see :mod:`.collect`) never reaches a worker: the API server
checks the drawing with the same :func:`decode_image` (in a thread, off the event loop, one at a time per process,
after the folder's room and within the same time as ``/predict``) and saves it.
"""

import io
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import litserve as ls
import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from mnist_lightning.checkpoint import build_model, read_checkpoint
from mnist_lightning.errors import one_line
from mnist_lightning.images import MAX_PIXELS, ImageError
from mnist_lightning.inference import SHIPPED_MODEL, load_model, predict_digits, shipped_card, shipped_summary
from mnist_lightning.models import ALLOWLIST
from mnist_lightning.preprocessing import preprocess
from mnist_lightning.serve.body import UploadLimits, correction_body, image_body
from mnist_lightning.serve.budget import OverBudget, return_freed_memory, time_budget
from mnist_lightning.serve.collect import Collection, check_label, check_png, check_room, save

STATIC = Path(__file__).parent / "static"
IMAGE_TIMEOUT_S = 10.0
"""Seconds a worker may spend decoding and preprocessing one image (a 280x280 canvas takes milliseconds)."""


@dataclass(frozen=True)
class Digit:
    """A preprocessed image, ``(1, 28, 28)`` in [0, 1], as the model sees it."""

    pixels: torch.Tensor


@dataclass(frozen=True)
class Refused:
    """Why an image could not be read as a digit."""

    reason: str


def decode_image(data: bytes) -> Digit | Refused:
    """Open, check the size of, and preprocess one image; never raises for bad bytes.

    Whatever goes wrong here is the image's doing (the model is not involved yet), so every error is a
    :class:`Refused` (a 422), never a 500: also an error preprocessing did not foresee.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                return Refused(f"{image.width}x{image.height} is too large (at most {MAX_PIXELS:,} pixels)")
            image.load()
            return Digit(preprocess(image))
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        return Refused(f"not a readable image ({type(err).__name__})")
    except ImageError as err:
        return Refused(one_line(str(err))[:200])
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        return Refused(f"not a readable image ({type(err).__name__}: {one_line(str(err))[:200]})")
    except Exception as err:
        return Refused(f"this image could not be preprocessed ({type(err).__name__}: {one_line(str(err))[:200]})")


def over_budget(seconds: float) -> str:
    return (
        f"the image took over {seconds:g} s to read (the server's limit per image): send a smaller image, "
        "cropped to the digit"
    )


class DigitAPI(ls.LitAPI):
    """Classify one image per request; requests are batched by LitServe when ``max_batch_size > 1``."""

    def __init__(
        self,
        checkpoint: Path,
        max_batch_size: int = 1,
        batch_timeout: float = 0.0,
        image_timeout: float = IMAGE_TIMEOUT_S,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.checkpoint = checkpoint
        self.image_timeout = image_timeout

    def setup(self, device: str) -> None:
        torch.set_num_threads(1)  # this worker process: one thread per worker is fastest for 28x28 images
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole process group: the server stops us
        self.model = load_model(self.checkpoint, map_location=device)

    def decode_request(self, request: Annotated[bytes, Depends(image_body)]) -> Digit | Refused:
        """The image read within the time budget: a costly image is refused, and the worker moves on."""
        try:
            with time_budget(self.image_timeout):
                return self.read_image(request)
        except OverBudget:
            return Refused(over_budget(self.image_timeout))

    def read_image(self, data: bytes) -> Digit | Refused:
        return decode_image(data)

    def predict(self, x: Digit | Refused | list[Digit | Refused]) -> Any:
        return self.classify(x) if isinstance(x, list) else self.classify([x])[0]

    @torch.inference_mode()
    def classify(self, items: list[Digit | Refused]) -> list[dict | Refused]:
        """Run the model once on the readable images of a batch; the others pass through."""
        digits = [item.pixels for item in items if isinstance(item, Digit)]
        if not digits:
            return list(items)
        predictions = predict_digits(self.model, torch.stack(digits))
        verdicts = (predictions.probabilities, predictions.unsure, predictions.not_a_digit, predictions.runner_up)
        answers = iter(zip(*verdicts, strict=True))
        return [item if isinstance(item, Refused) else self.result(item, *next(answers)) for item in items]

    @staticmethod
    def result(
        digit: Digit,
        probabilities: torch.Tensor,
        unsure: torch.Tensor,
        not_a_digit: torch.Tensor,
        runner_up: torch.Tensor,
    ) -> dict:
        return {
            "label": int(probabilities.argmax()),
            "unsure": bool(unsure),
            "not_a_digit": bool(not_a_digit),
            "runner_up": int(runner_up),
            "probabilities": [round(p, 6) for p in probabilities.tolist()],
            "input": [[round(v, 3) for v in row] for row in digit.pixels[0].tolist()],
        }

    def encode_response(self, output: dict | Refused) -> Response:
        if isinstance(output, Refused):
            return JSONResponse({"error": output.reason}, 422)
        return JSONResponse(output)


def model_metadata(checkpoint: Path) -> dict:
    """What ``GET /info`` says about the model; reading the checkpoint here also vets it before workers start."""
    content = read_checkpoint(checkpoint)
    model = build_model(content, ALLOWLIST)
    if checkpoint == SHIPPED_MODEL:
        card, summary = shipped_card(), shipped_summary()
        return {
            "model_class": type(model).__name__,
            "checkpoint": "shipped",
            "summary": f"{summary[0].upper()}{summary[1:]}.",
            "config": card["config"],
            "val_accuracy": None,
            "test_accuracy": card["mnist_test_accuracy"],
            "handwriting_accuracy": card["handwriting"]["accuracy"],
        }
    test = recorded_score(content, "test/acc")
    val = recorded_score(content, "val/acc")
    measured = ""
    if test is not None or val is not None:
        measured = f" ({test:.2%} on MNIST's test digits)" if test is not None else f" ({val:.2%} on validation digits)"
    return {
        "model_class": type(model).__name__,
        "checkpoint": str(checkpoint),
        "summary": f"{type(model).__name__} from {checkpoint.name}{measured}.",
        "val_accuracy": val,
        "test_accuracy": test,
    }


def recorded_score(content: dict, metric: str) -> float | None:
    """The score of ``metric`` a checkpoint callback recorded when this checkpoint was written, if any."""
    for state in content.get("callbacks", {}).values():
        if isinstance(state, dict) and state.get("monitor") == metric and state.get("current_score") is not None:
            return round(float(state["current_score"]), 4)
    return None


async def http_error(request: Request, exc: Exception) -> Response:
    """Every error as one line of JSON, ``{"error": "..."}``; headers an error carries (``Allow``) are kept."""
    if isinstance(exc, HTTPException) and exc.status_code in (404, 405) and (allowed := allowed_methods(request)):
        detail = f"{request.method} is not allowed on {request.url.path}: use {' or '.join(allowed)}"
        exc = HTTPException(405, detail, {"Allow": ", ".join(allowed)})
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, exc.headers)
    if isinstance(exc, RequestValidationError):
        return JSONResponse({"error": "invalid request"}, 422)
    return JSONResponse({"error": "internal error"}, 500)


def allowed_methods(request: Request) -> list[str]:
    """The methods of the routes whose path (not method) matches the request, e.g. ``["POST"]`` for ``GET /predict``.

    The page is mounted at ``/`` and matches every path and method, so without this a wrong method on an API
    route would reach the page (404 for ``GET``, a bare 405 without ``Allow`` for others).
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] == Match.PARTIAL:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def correct(request: Request) -> Response:
    """``POST /corrections``: save a drawing with the digit it is (201), or say in one line why not."""
    collection: Collection | None = request.app.state.collection
    if collection is None:
        raise HTTPException(403, "this server does not collect corrections: start it with --collect DIR")
    label, image = await correction_body(request, collection.max_body_bytes)
    timeout = request.app.state.image_timeout
    return JSONResponse(await run_in_threadpool(keep_correction, collection, label, image, timeout), 201)


DECODE_SLOTS = threading.BoundedSemaphore(1)
"""Corrections are decoded in the API process (they never reach a worker), one at a time per process: many large
images sent at once cost the memory of one."""
DECODE_WAIT_S = 10.0
"""How long a correction waits for the decoding slot before it is answered 503."""


def keep_correction(collection: Collection, label: object, image: bytes, image_timeout: float) -> dict:
    """Check everything about a correction before anything is written: the label, the PNG, room in the folder
    (before decoding: a full folder answers 409 at once), and that it is a digit read within the time ``/predict``
    allows an image, so that the two endpoints give one verdict."""
    label = check_label(label)
    check_png(image, collection.max_image_bytes)
    check_room(collection, len(image))
    if not DECODE_SLOTS.acquire(timeout=DECODE_WAIT_S):
        raise HTTPException(503, "the server is busy checking other corrections: send it again in a moment")
    try:
        started = time.monotonic()
        read = decode_image(image)
        took = time.monotonic() - started
    finally:
        DECODE_SLOTS.release()
    if 0 < image_timeout < took:
        raise HTTPException(422, over_budget(image_timeout))
    if isinstance(read, Refused):
        raise HTTPException(422, read.reason)
    return save(collection, label, image)


def collecting(app: FastAPI) -> dict:
    """What ``GET /info`` adds: where corrections go and the folder's limits, or null when they are not collected."""
    collection: Collection | None = app.state.collection
    return {"collect": collection.info() if collection else None}


def extend_info(server: ls.LitServer, extra: Callable[[FastAPI], dict]) -> None:
    """LitServe's ``GET /info`` with ``extra(app)`` beside its ``model`` and ``server`` sections (LitServe has no
    option for it: its route is replaced by one that adds to LitServe's answer)."""
    (route,) = [route for route in server.app.router.routes if getattr(route, "path", None) == server.info_path]
    litserve_info = route.endpoint
    server.app.router.routes.remove(route)

    async def info(request: Request) -> Response:
        return JSONResponse({**json.loads((await litserve_info(request)).body), **extra(request.app)})

    server.app.add_api_route(server.info_path, info, methods=["GET"])


def serve_page(app: FastAPI) -> None:
    """Serve the page's static files at ``/``, in place of LitServe's plain-text "litserve running" index."""
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) != "/"]
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="page")


def create_server(
    checkpoint: Path,
    workers: int = 1,
    max_batch_size: int = 1,
    batch_timeout: float = 0.0,
    limits: UploadLimits | None = None,
    image_timeout: float = IMAGE_TIMEOUT_S,
    api_class: type[DigitAPI] = DigitAPI,
    collection: Collection | None = None,
) -> ls.LitServer:
    """A LitServer for ``checkpoint`` (vetted here, loaded in each worker), with the page and JSON errors; it saves
    corrections into ``collection`` when one is given."""
    return_freed_memory()
    api = api_class(checkpoint, max_batch_size, batch_timeout, image_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers, model_metadata=model_metadata(checkpoint))
    server.app.state.upload_limits = limits or UploadLimits()
    server.app.state.collection = collection
    server.app.state.image_timeout = image_timeout
    for exc_class in (HTTPException, RequestValidationError, Exception):
        server.app.add_exception_handler(exc_class, http_error)
    server.app.add_api_route("/corrections", correct, methods=["POST"], status_code=201)
    extend_info(server, collecting)
    serve_page(server.app)
    return server
