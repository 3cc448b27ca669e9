"""Read an image out of an HTTP request: raw bytes, multipart upload or base64 JSON, bounded in size, time and cost;
and a correction's label and image (``POST /corrections``), multipart or JSON, each field exactly once.

Runs in the API server before anything is queued for the model, so every bad request is answered here with a
4xx and never reaches an inference worker. The body is read in the event loop (it only waits); unpacking it
runs in a worker thread. Unpacking is bounded so that no body can keep the API server busy: JSON may hold at
most :data:`MAX_JSON_PUNCTUATION` of ``{ [ , :`` (``{"image": "..."}`` needs two), multipart at most
:data:`MAX_PARTS` parts of at most :data:`MAX_PART_HEADER_LINES` header lines; both are counted in C before
anything is parsed. Two things are done by hand on purpose:

- the size limit: LitServe's ``max_payload_size`` answers "Payload too large" without saying the limit and only
  after the body has streamed in; here a too-large ``Content-Length`` is refused before reading, and the stream
  is cut at the limit either way;
- multipart: Starlette's ``Request.form()`` spools uploads over 1 MB to a temporary file on disk; the body
  here is already in memory (at most the limit), so it is split at its boundary in place.
"""

import asyncio
import base64
import binascii
import email.message
import email.parser
import json
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

MAX_BODY_BYTES = 5 * 1024 * 1024
UPLOAD_DEADLINE_S = 10.0
ACCEPTED = 'send PNG/JPEG bytes (Content-Type: image/png), a multipart file, or JSON {"image": "<base64>"}'
MAX_JSON_PUNCTUATION = 32
"""``{``, ``[``, ``,`` and ``:`` a JSON body may hold: parsing costs per value (5 MB of ``0,`` take a second)."""
MAX_PARTS = 16
"""Parts a multipart body may have (the page and ``curl -F`` send one): parsing costs per part."""
MAX_PART_HEADER_LINES = 16
MAX_PART_HEADER_BYTES = 8192


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


class RepeatedKeyError(Exception):
    """A JSON object names one key twice (``json`` would keep the last silently)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook``: the object, refused when a key repeats."""
    document = dict(pairs)
    if len(document) < len(pairs):
        raise RepeatedKeyError(next(key for index, (key, _) in enumerate(pairs) if key in dict(pairs[:index])))
    return document


def json_object(body: bytes, expected: str) -> dict[str, Any]:
    """A JSON object of a few fields, each key once; 400 saying ``expected`` for anything else."""
    punctuation = sum(body.count(mark) for mark in (b"{", b"[", b",", b":"))
    if punctuation > MAX_JSON_PUNCTUATION:
        found = f"{punctuation:,} of the characters {{ [ , : (at most {MAX_JSON_PUNCTUATION})"
        raise HTTPException(400, f"the JSON holds {found}: send only {expected}")
    try:
        document = json.loads(body, object_pairs_hook=unique_keys)
    except RepeatedKeyError as err:
        raise HTTPException(400, f'the JSON gives "{str(err)[:40]}" twice: send each field once') from None
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


def multipart_boundary(content_type: str) -> bytes:
    """The ``boundary`` parameter of a multipart Content-Type (1 to 70 characters, RFC 2046)."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise HTTPException(400, "the multipart Content-Type needs a boundary of 1 to 70 characters")
    return boundary.encode("latin-1", "replace")


def multipart_parts(boundary: bytes, body: bytes) -> list[tuple[email.message.Message, bytes]]:
    """The (headers, content) of each part, refused with 400 past :data:`MAX_PARTS` parts or a part's header limit.

    The parts are counted (``bytes.count``, in C) before anything is split or parsed.
    """
    delimiter = b"--" + boundary
    if body.count(delimiter) > MAX_PARTS + 1:  # one more for the closing delimiter
        raise HTTPException(400, f"the multipart body has over {MAX_PARTS} parts: send the image as its only file")
    parts = []
    for chunk in (b"\r\n" + body).split(b"\r\n" + delimiter)[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter; what follows is an epilogue
            break
        line_end = chunk.find(b"\r\n")  # the rest of the delimiter line (transport padding)
        rest = chunk[line_end + 2 :] if line_end >= 0 else b""
        head, _, content = (b"", b"", rest[2:]) if rest.startswith(b"\r\n") else rest.partition(b"\r\n\r\n")
        if len(head) > MAX_PART_HEADER_BYTES or head.count(b"\r\n") >= MAX_PART_HEADER_LINES:
            raise HTTPException(
                400,
                f"a multipart part has over {MAX_PART_HEADER_LINES} header lines or {MAX_PART_HEADER_BYTES:,} bytes "
                "of headers",
            )
        parts.append((email.parser.BytesHeaderParser().parsebytes(head), content))
    return parts


def from_multipart(content_type: str, body: bytes) -> bytes:
    """The first file (or field named ``image``) of a ``multipart/form-data`` body."""
    for headers, content in multipart_parts(multipart_boundary(content_type), body):
        if headers.get_filename() or headers.get_param("name", header="content-disposition") == "image":
            return content
    raise HTTPException(400, "the multipart body has no file: upload the image as a file field")


def image_kind(content_type: str) -> str:
    """The media type of a body that can carry an image; 415 for any other."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind in ("application/json", "multipart/form-data", "application/octet-stream") or kind.startswith("image/"):
        return kind
    raise HTTPException(415, f"unsupported Content-Type {kind or '(none)'!r}: {ACCEPTED}")


def extract_image(content_type: str, body: bytes) -> bytes:
    """The image bytes a body of ``content_type`` carries."""
    kind = image_kind(content_type)
    if kind == "application/json":
        data = from_json(body)
    elif kind == "multipart/form-data":
        data = from_multipart(content_type, body)
    else:
        data = body
    if not data:
        raise HTTPException(400, f"the request holds no image: {ACCEPTED}")
    return data


@dataclass(frozen=True)
class UploadLimits:
    """How large and how slow a request body may be; kept in ``app.state.upload_limits``."""

    max_bytes: int = MAX_BODY_BYTES
    deadline_s: float = UPLOAD_DEADLINE_S


async def image_body(request: Request) -> bytes:
    """A FastAPI dependency: the image bytes of a ``POST /predict`` request, within the app's upload limits."""
    limits: UploadLimits = request.app.state.upload_limits
    content_type = request.headers.get("content-type", "")
    image_kind(content_type)  # refuse before reading the body
    body = await read_body(request, limits.max_bytes, limits.deadline_s)
    return await run_in_threadpool(extract_image, content_type, body)


CORRECTION_FIELDS = ("label", "image")
CORRECTION = (
    'multipart fields "label" and "image" (curl -F label=7 -F image=@digit.png), '
    'or JSON {"label": "7", "image": "<base64 PNG>"}'
)


def correction_kind(content_type: str) -> str:
    """The media type of a body that can carry a correction; 415 for any other."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind in ("application/json", "multipart/form-data"):
        return kind
    raise HTTPException(415, f"unsupported Content-Type {kind or '(none)'!r} for a correction: send {CORRECTION}")


def correction_fields(content_type: str, body: bytes) -> tuple[object, bytes]:
    """The label (checked by the caller) and the image bytes of a correction, each field given exactly once."""
    fields: dict[str, Any] = {}
    if correction_kind(content_type) == "application/json":
        document = json_object(body, '{"label": "7", "image": "<base64 PNG>"}')
        fields = {name: document[name] for name in CORRECTION_FIELDS if name in document}
        if isinstance(fields.get("image"), str):
            fields["image"] = from_base64(fields["image"])
    else:
        for headers, content in multipart_parts(multipart_boundary(content_type), body):
            name = headers.get_param("name", header="content-disposition")
            if name in fields:
                raise HTTPException(400, f'the field "{name}" is given twice: send each field once')
            if name in CORRECTION_FIELDS:
                fields[name] = content.decode("utf-8", "replace") if name == "label" else content
    missing = [name for name in CORRECTION_FIELDS if name not in fields]
    if missing:
        raise HTTPException(400, f'the correction has no "{missing[0]}" field: send {CORRECTION}')
    if not isinstance(fields["image"], bytes) or not fields["image"]:
        raise HTTPException(400, f'the "image" field holds no image: send {CORRECTION}')
    return fields["label"], fields["image"]


async def correction_body(request: Request, max_bytes: int) -> tuple[object, bytes]:
    """The label and image of a ``POST /corrections`` request, read within ``max_bytes`` and the upload deadline."""
    content_type = request.headers.get("content-type", "")
    correction_kind(content_type)  # refuse before reading the body
    body = await read_body(request, max_bytes, request.app.state.upload_limits.deadline_s)
    return await run_in_threadpool(correction_fields, content_type, body)
