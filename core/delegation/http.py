"""``POST /tasks`` on the node's port: the executor over plain HTTP, and the client for it.

The JSON form is described in :mod:`core.delegation.protocol`. The requester named in the
``X-Covey-Signer`` header is authorised before the body is read; the body is bounded in size
and time, and uploads in flight are bounded; then the request goes through the same admission
step as over a peer link (the signer must be the header's requester).
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web

from core.delegation import protocol as proto
from core.delegation.encoding import MAX_RESULT_BYTES, received_result
from core.delegation.errors import ExecutorBusy
from core.delegation.tasks import MAX_WEIGHTS_BYTES
from core.errors import BadRequest, CoveyError, MalformedMessage, MessageTooLarge, PeerUnreachable, TimedOut, from_code
from core.identity import is_peer_id

MAX_BODY = MAX_WEIGHTS_BYTES * 4 // 3 + 64 * 1024   # the largest request: weights in base64
MAX_ANSWER = MAX_RESULT_BYTES * 4 // 3 + 128 * 1024  # result in base64 plus the proof
BODY_TIMEOUT = 30.0
MAX_UPLOADS = 4          # request bodies being read at once


class HttpEndpoint:
    """The ``POST /tasks`` handler of one node's delegation service."""

    def __init__(self, service, max_uploads: int = MAX_UPLOADS):
        self.service = service
        self.max_uploads = max_uploads
        self.uploads = 0

    async def handle(self, request: web.Request) -> web.Response:
        try:
            return await self._handle(request)
        except CoveyError as exc:
            headers = {}
            if exc.details.get("retry_after"):
                headers["Retry-After"] = str(max(1, round(exc.details["retry_after"])))
            return web.json_response({"error": {"code": exc.code, "message": str(exc)}},
                                     status=proto.HTTP_STATUS.get(exc.code, 400), headers=headers)

    async def _handle(self, request: web.Request) -> web.Response:
        signer = request.headers.get(proto.SIGNER_HEADER, "").strip().lower()
        if not is_peer_id(signer):
            raise BadRequest(f"send the requester's id (64 hex digits) in the {proto.SIGNER_HEADER} header")
        self.service.authorize(signer)            # who may delegate: before the body is read
        envelope = await self._read(request)
        req = self.service.admit(envelope, signer, authenticated=False)
        served = await self.service.serve(req, via="http")
        return web.json_response({"task": req.task, "executor": self.service.node.identity.id,
                                  "proof": served.proof, "result": proto.to_json_form(served.result_bytes)})

    async def _read(self, request: web.Request):
        size = request.content_length
        if size is None:
            raise BadRequest("send the request with a Content-Length")
        if size > MAX_BODY:
            raise MessageTooLarge(f"the request is {size} bytes; the limit is {MAX_BODY}")
        if self.uploads >= self.max_uploads:
            raise ExecutorBusy(f"executor busy: {self.uploads} task requests are being uploaded; "
                               "try again later")
        self.uploads += 1
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                raw = await request.content.readexactly(size)
        except TimeoutError:
            raise TimedOut(f"the request body did not arrive within {BODY_TIMEOUT:g} s") from None
        except asyncio.IncompleteReadError:
            raise BadRequest("the request body is shorter than its Content-Length") from None
        finally:
            self.uploads -= 1
        try:
            doc = proto.from_json_form(json.loads(raw))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise MalformedMessage(f"the request is not the JSON form of a signed task request: {exc}") from None
        if not isinstance(doc, dict) or set(doc) != {"request"}:
            raise MalformedMessage('the body is {"request": <signed task request in JSON form>}')
        return doc["request"]


def request_body(sent) -> bytes:
    """The ``POST /tasks`` body of a built request (``core.delegation.request.TaskRequest``)."""
    return json.dumps({"request": proto.to_json_form(sent.envelope)}).encode()


async def submit(session: aiohttp.ClientSession, address: str, sent, timeout: float) -> tuple[dict, bytes]:
    """POST ``sent`` to the node at ``address`` -> (proof, result bytes), not yet verified;
    its refusal is raised typed."""
    url = f"http://{address}{proto.HTTP_PATH}"
    headers = {proto.SIGNER_HEADER: sent.requester, "Content-Type": "application/json"}
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, data=request_body(sent), headers=headers) as resp:
                raw = await resp.content.read(MAX_ANSWER + 1)
                status = resp.status
    except TimeoutError:
        raise TimedOut(f"POST {url} got no answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise PeerUnreachable(f"could not reach {address} over HTTP: {exc}") from None
    if len(raw) > MAX_ANSWER:
        raise MessageTooLarge(f"the answer from {address} is larger than {MAX_ANSWER} bytes")
    return parse_answer(status, raw)


def parse_answer(status: int, raw: bytes) -> tuple[dict, bytes]:
    """(proof, result bytes) of a ``POST /tasks`` answer, or its error raised typed."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedMessage(f"the executor answered HTTP {status} with a body that is not JSON") from None
    if status != 200:
        err = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(err, dict):
            raise MalformedMessage(f"the executor answered HTTP {status}")
        raise from_code(str(err.get("code", "error"))[:40], str(err.get("message", "error"))[:2000])
    if not isinstance(doc, dict) or not {"proof", "result"} <= set(doc):
        raise MalformedMessage('the answer is {"task", "executor", "proof", "result"}')
    try:
        result = proto.from_json_form(doc["result"])
    except ValueError as exc:
        raise MalformedMessage(f"the result is not in JSON form: {exc}") from None
    if not isinstance(result, bytes):
        raise MalformedMessage('the result is {"$base64": "<the result bytes>"}')
    return doc["proof"], received_result(result)
