"""Read an image out of an HTTP request: raw bytes, multipart upload or base64 JSON, bounded in size and time.

Runs in the API server before anything is queued for the model, so every bad request is answered here with a
4xx and never reaches an inference worker. Two things are done by hand on purpose:

- the size limit: LitServe's ``max_payload_size`` answers "Payload too large" without saying the limit and only
  after the body has streamed in; here a too-large ``Content-Length`` is refused before reading, and the stream
  is cut at the limit either way;
- multipart: Starlette's ``Request.form()`` spools uploads over 1 MB to a temporary file on disk; the body
  here is already in memory (at most the limit), so the standard library's e-mail parser reads it in place.
"""

import asyncio
import base64
import binascii
import email.parser
import email.policy
import json
from dataclasses import dataclass

from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect

MAX_BODY_BYTES = 5 * 1024 * 1024
UPLOAD_DEADLINE_S = 10.0
ACCEPTED = 'send PNG/JPEG bytes (Content-Type: image/png), a multipart file, or JSON {"image": "<base64>"}'


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


def from_json(body: bytes) -> bytes:
    """The image of ``{"image": "<base64>"}``; a ``data:image/png;base64,`` prefix is allowed."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HTTPException(400, f"malformed JSON: {err}") from None
    text = document.get("image") if isinstance(document, dict) else None
    if not isinstance(text, str):
        raise HTTPException(400, 'the JSON must be an object {"image": "<base64 PNG or JPEG>"}')
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, 'the "image" field is not valid base64') from None


def from_multipart(content_type: str, body: bytes) -> bytes:
    """The first file (or field named ``image``) of a ``multipart/form-data`` body."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_filename() or part.get_param("name", header="content-disposition") == "image":
                return part.get_payload(decode=True) or b""
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
    return extract_image(content_type, await read_body(request, limits.max_bytes, limits.deadline_s))
