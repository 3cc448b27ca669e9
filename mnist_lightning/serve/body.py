"""Read an image out of an HTTP request: raw bytes, multipart upload or base64 JSON, bounded in size, time and cost;
and a correction's label and image (``POST /corrections``), multipart or JSON, each field exactly once.

Runs in the API server before anything is queued for the model, so every bad request is answered here with a
4xx and never reaches an inference worker. The body is read in the event loop (it only waits). JSON is parsed in a
worker thread and may hold at most :data:`MAX_JSON_PUNCTUATION` of ``{ [ , :`` (``{"image": "..."}`` needs two),
counted in C before anything is parsed. Multipart is parsed by Starlette's parser (python-multipart), which stops
at the first part past :data:`MAX_PARTS` and at a part's ninth header line or 4 KB of headers, so that no body
keeps the event loop busy for more than milliseconds. Two things are done by hand on purpose:

- the size limit: LitServe's ``max_payload_size`` answers "Payload too large" without saying the limit and only
  after the body has streamed in; here a too-large ``Content-Length`` is refused before reading, and the stream
  is cut at the limit either way;
- the multipart parser is fed that body from memory and keeps its files there: ``Request.form()`` would spool
  every upload over 1 MB to a temporary file on disk.
"""

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

MAX_BODY_BYTES = 5 * 1024 * 1024
UPLOAD_DEADLINE_S = 10.0
ACCEPTED = 'send PNG/JPEG bytes (Content-Type: image/png), a multipart file, or JSON {"image": "<base64>"}'
MAX_JSON_PUNCTUATION = 32
"""``{``, ``[``, ``,`` and ``:`` a JSON body may hold: parsing costs per value (5 MB of ``0,`` take a second)."""
MAX_PARTS = 16
"""Files, and fields besides, a multipart body may have (the page and ``curl -F`` send one or two): parsing costs
per part."""


def size_error(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is over the {limit / 2**20:g} MB limit ({limit:,} bytes)")


async def read_body(request: Request, limit: int, deadline_s: float) -> bytes:
    """The whole body, refused with 413 past ``limit`` bytes and 408 when it takes longer than ``deadline_s``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise size_error(limit)

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise size_error(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), deadline_s)
    except asyncio.TimeoutError:
        raise HTTPException(408, f"the upload took longer than {deadline_s:g} s") from None
    except ClientDisconnect:
        raise HTTPException(400, "the upload was aborted") from None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: the object, refused when a key repeats (``json`` would keep the last
    silently)."""
    document = dict(pairs)
    if len(document) < len(pairs):
        key = next(key for index, (key, _) in enumerate(pairs) if key in dict(pairs[:index]))
        raise HTTPException(400, f'the JSON gives "{key[:40]}" twice: send each field once')
    return document


def json_object(body: bytes, expected: str) -> dict[str, Any]:
    """A JSON object of a few fields, each key once; 400 saying ``expected`` for anything else."""
    punctuation = sum(body.count(mark) for mark in (b"{", b"[", b",", b":"))
    if punctuation > MAX_JSON_PUNCTUATION:
        found = f"{punctuation:,} of the characters {{ [ , : (at most {MAX_JSON_PUNCTUATION})"
        raise HTTPException(400, f"the JSON holds {found}: send only {expected}")
    try:
        document = json.loads(body, object_pairs_hook=unique_keys)
    except RecursionError:
        raise HTTPException(400, f"the JSON is nested too deeply: send {expected}") from None
    except ValueError as err:  # also UnicodeDecodeError and numbers over Python's 4,300 digits
        raise HTTPException(400, f"malformed JSON: {str(err)[:200]}") from None
    if not isinstance(document, dict):
        raise HTTPException(400, f"the JSON must be an object {expected}")
    return document


def from_base64(text: str, field: str = "image") -> bytes:
    """The bytes of a base64 string; a ``data:image/png;base64,`` prefix is allowed."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f'the "{field}" field is not valid base64') from None


def from_json(body: bytes) -> bytes:
    """The image of ``{"image": "<base64>"}``; a ``data:image/png;base64,`` prefix is allowed."""
    expected = '{"image": "<base64 PNG or JPEG>"}'
    text = json_object(body, expected).get("image")
    if not isinstance(text, str):
        raise HTTPException(400, f"the JSON must be an object {expected}")
    return from_base64(text)


async def multipart_form(request: Request, body: bytes) -> FormData:
    """The fields and files of a ``multipart/form-data`` body already read (:func:`read_body`); 400 saying why for
    a body the parser refuses (no boundary, over :data:`MAX_PARTS` parts, too many header lines, malformed)."""

    async def in_memory() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, in_memory(), max_files=MAX_PARTS, max_fields=MAX_PARTS)
    parser.spool_max_size = len(body)  # a file never outgrows the body, so none is spooled to disk
    try:
        return await parser.parse()
    except MultiPartException as err:
        raise HTTPException(
            400, f"the multipart body is refused ({err.message}): send the image as its only file (curl -F image=@FILE)"
        ) from None


def media_type(content_type: str, accepted: tuple[str, ...], expected: str) -> str:
    """The media type of a body when it is one of ``accepted`` (``image/``: any image); 415 saying ``expected``."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind in accepted or ("image/" in accepted and kind.startswith("image/")):
        return kind
    raise HTTPException(415, f"unsupported Content-Type {kind or '(none)'!r}: {expected}")


@dataclass(frozen=True)
class UploadLimits:
    """How large and how slow a request body may be; kept in ``app.state.upload_limits``."""

    max_bytes: int = MAX_BODY_BYTES
    deadline_s: float = UPLOAD_DEADLINE_S


async def image_body(request: Request) -> bytes:
    """A FastAPI dependency: the image bytes of a ``POST /predict`` request, within the app's upload limits: the
    body itself, the first file of a multipart body, or the base64 ``image`` of a JSON object."""
    limits: UploadLimits = request.app.state.upload_limits
    accepted = ("application/json", "multipart/form-data", "application/octet-stream", "image/")
    kind = media_type(request.headers.get("content-type", ""), accepted, ACCEPTED)  # refuse before reading the body
    body = await read_body(request, limits.max_bytes, limits.deadline_s)
    if kind == "application/json":
        data = await run_in_threadpool(from_json, body)
    elif kind == "multipart/form-data":
        files = [
            value for _, value in (await multipart_form(request, body)).multi_items() if isinstance(value, UploadFile)
        ]
        if not files:
            raise HTTPException(400, "the multipart body has no file: upload the image as a file field")
        data = await files[0].read()
    else:
        data = body
    if not data:
        raise HTTPException(400, f"the request holds no image: {ACCEPTED}")
    return data


CORRECTION_FIELDS = ("label", "image")
CORRECTION = (
    'multipart fields "label" and "image" (curl -F label=7 -F image=@digit.png), '
    'or JSON {"label": "7", "image": "<base64 PNG>"}'
)


def json_correction(body: bytes) -> dict[str, Any]:
    """The fields of a JSON correction, its image decoded from base64."""
    document = json_object(body, '{"label": "7", "image": "<base64 PNG>"}')
    fields = {name: document[name] for name in CORRECTION_FIELDS if name in document}
    if isinstance(fields.get("image"), str):
        fields["image"] = from_base64(fields["image"])
    return fields


async def form_correction(form: FormData) -> dict[str, Any]:
    """The fields of a multipart correction, each given at most once; the image's bytes when it is a file."""
    fields: dict[str, Any] = {}
    for name in CORRECTION_FIELDS:
        values = form.getlist(name)
        if len(values) > 1:
            raise HTTPException(400, f'the field "{name}" is given twice: send each field once')
        if values:
            fields[name] = (
                await values[0].read() if isinstance(values[0], UploadFile) and name == "image" else values[0]
            )
    return fields


async def correction_body(request: Request, max_bytes: int) -> tuple[object, bytes]:
    """The label (checked by the caller) and the image bytes of a ``POST /corrections`` request, read within
    ``max_bytes`` and the upload deadline, each field given exactly once."""
    accepted = ("application/json", "multipart/form-data")
    kind = media_type(request.headers.get("content-type", ""), accepted, f"send {CORRECTION}")
    body = await read_body(request, max_bytes, request.app.state.upload_limits.deadline_s)
    if kind == "application/json":
        fields = await run_in_threadpool(json_correction, body)
    else:
        fields = await form_correction(await multipart_form(request, body))
    missing = [name for name in CORRECTION_FIELDS if name not in fields]
    if missing:
        raise HTTPException(400, f'the correction has no "{missing[0]}" field: send {CORRECTION}')
    if not isinstance(fields["image"], bytes) or not fields["image"]:
        raise HTTPException(400, f'the "image" field holds no image: send {CORRECTION}')
    return fields["label"], fields["image"]
