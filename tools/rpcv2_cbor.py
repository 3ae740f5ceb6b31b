"""CloudWatch's Smithy RPC v2 CBOR protocol in front of moto, which speaks only its older protocols.

The AWS SDKs' CloudWatch clients now send `POST /service/GraniteServiceVersion20100801/operation/<Operation>` with
the header `smithy-protocol: rpc-v2-cbor` and a CBOR body (the Rust SDK's aws-sdk-cloudwatch knows no other
protocol; botocore lists it first among the service's protocols); moto (5.2) parses awsJson and awsQuery only, and
routes the new path nowhere. This WSGI layer turns such a request into the awsJson request moto knows (the same
members as JSON, `X-Amz-Target: GraniteServiceVersion20100801.<Operation>`), and moto's JSON answer back into CBOR,
as the protocol specifies (https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html): a CBOR map per
structure, timestamps as tag 1 (epoch seconds), the error's shape name in `__type` (and its awsQuery code in the
`x-amzn-query-error` header, as for every awsQueryCompatible service), the response header
`smithy-protocol: rpc-v2-cbor`. Which members are timestamps comes from botocore's CloudWatch model. A gzip request
body (the SDKs' request compression of PutMetricData) is inflated first.

Only what the Rust SDK and boto3 send is handled: definite and indefinite lengths, integers, floats, strings, byte
strings, arrays, maps, booleans, null and tag 1. Under moto's IAM enforcement the rewritten request no longer
matches its signature: not supported (no test needs it).
"""

from __future__ import annotations

import gzip
import io
import json
import struct
from typing import Any, Callable, Iterable

SERVICE = "GraniteServiceVersion20100801"
PREFIX = f"/service/{SERVICE}/operation/"


def operation(environ: dict[str, Any]) -> str | None:
    """The operation of a CloudWatch RPC v2 CBOR request, or None for any other request."""
    path = environ.get("PATH_INFO", "")
    if environ.get("HTTP_SMITHY_PROTOCOL", "").lower() != "rpc-v2-cbor" or not path.startswith(PREFIX):
        return None
    return path[len(PREFIX):].strip("/") or None


# ---- CBOR (RFC 8949), the subset the protocol uses ----------------------------------------------------------------

BREAK = 0xFF


class Decoder:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("truncated CBOR")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def argument(self, info: int) -> int | None:
        if info < 24:
            return info
        if info in (24, 25, 26, 27):
            return int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == 31:
            return None  # indefinite length
        raise ValueError(f"bad CBOR additional info {info}")

    def item(self) -> Any:
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self.simple(info)
        n = self.argument(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major in (2, 3):
            if n is None:
                chunks = []
                while self.data[self.at] != BREAK:
                    chunks.append(self.item())
                self.at += 1
                raw = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
            else:
                raw = self.take(n)
            return raw if major == 2 else raw.decode("utf-8")
        if major == 4:
            if n is None:
                items = []
                while self.data[self.at] != BREAK:
                    items.append(self.item())
                self.at += 1
                return items
            return [self.item() for _ in range(n)]
        if major == 5:
            out = {}
            count = 0
            while (n is None and self.data[self.at] != BREAK) or (n is not None and count < n):
                key = self.item()
                out[key] = self.item()
                count += 1
            if n is None:
                self.at += 1
            return out
        if major == 6:
            value = self.item()
            if n == 1:
                return float(value)  # epoch seconds: awsJson's timestamp form
            raise ValueError(f"unsupported CBOR tag {n}")
        raise ValueError(f"bad CBOR major type {major}")

    def simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        raise ValueError(f"unsupported CBOR simple value {info}")


def decode(data: bytes) -> Any:
    return Decoder(data).item() if data else {}


def head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError("CBOR argument too large")


def encode(value: Any, shape: Any = None) -> bytes:
    """`value` (parsed JSON) as CBOR; `shape` (a botocore shape, or None) marks which numbers are timestamps."""
    kind = getattr(shape, "type_name", None)
    if value is None:
        return b"\xf6"
    if kind == "timestamp" and isinstance(value, (int, float)):
        return b"\xc1" + encode(float(value))
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return head(3, len(raw)) + raw
    if isinstance(value, (bytes, bytearray)):
        return head(2, len(value)) + bytes(value)
    if isinstance(value, list):
        member = getattr(shape, "member", None)
        return head(4, len(value)) + b"".join(encode(v, member) for v in value)
    if isinstance(value, dict):
        members = getattr(shape, "members", {}) if kind == "structure" else {}
        map_value = getattr(shape, "value", None) if kind == "map" else None
        out = head(5, len(value))
        for k, v in value.items():
            out += encode(k) + encode(v, members.get(k) if members else map_value)
        return out
    raise ValueError(f"cannot encode {type(value).__name__} as CBOR")


# ---- the WSGI layer -------------------------------------------------------------------------------------------------

_model = None


def model():
    global _model
    if _model is None:
        import botocore.session
        _model = botocore.session.get_session().get_service_model("cloudwatch")
    return _model


class Translator:
    """moto's WSGI app, with CloudWatch's RPC v2 CBOR requests answered through its awsJson protocol."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        op = operation(environ)
        if op is None:
            return self.app(environ, start_response)
        stream = environ.get("wsgi.input")
        body = stream.read() if stream is not None else b""
        if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
            body = gzip.decompress(body)
        try:
            request = decode(body)
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            return self.error(start_response, "400 Bad Request", "SerializationException", f"bad CBOR body: {e}")
        payload = json.dumps(request).encode()
        env = dict(environ)
        env.update({"PATH_INFO": "/", "QUERY_STRING": "", "CONTENT_TYPE": "application/x-amz-json-1.0",
                    "CONTENT_LENGTH": str(len(payload)), "wsgi.input": io.BytesIO(payload),
                    "HTTP_X_AMZ_TARGET": f"{SERVICE}.{op}"})
        for key in ("HTTP_SMITHY_PROTOCOL", "HTTP_CONTENT_ENCODING"):
            env.pop(key, None)
        answered: list[Any] = []

        def capture(status: str, headers, exc_info=None):
            answered[:] = [status, list(headers)]
            return lambda _data: None

        result = self.app(env, capture)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status, headers = answered if answered else ("500 Internal Server Error", [])
        try:
            doc = json.loads(data) if data.strip() else {}
        except ValueError:
            doc = None
        if status[:1] != "2":
            lower = {k.lower(): v for k, v in headers}
            code = lower.get("x-amzn-errortype", "")
            if isinstance(doc, dict):
                code = code or str(doc.get("__type", ""))
                message = str(doc.get("message", doc.get("Message", "")))
            else:
                message = data[:300].decode("utf-8", "replace")
            # CloudWatch is awsQueryCompatible: the error's awsQuery code travels in this header, which the SDKs
            # read as the error code ("InvalidParameterValue;Sender").
            query_error = lower.get("x-amzn-query-error")
            return self.error(start_response, status, code.split(":")[0].rsplit("#", 1)[-1] or "InternalFailure",
                              message, query_error)
        if not isinstance(doc, dict):
            return self.error(start_response, "500 Internal Server Error", "InternalFailure",
                              "moto's answer was not JSON")
        try:
            shape = model().operation_model(op).output_shape
        except Exception:  # noqa: BLE001 - an operation botocore does not know: no timestamps marked
            shape = None
        return self.answer(start_response, status, encode(doc, shape))

    @staticmethod
    def answer(start_response: Callable, status: str, body: bytes,
               extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        start_response(status, [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
                                ("Content-Length", str(len(body))), *(extra or [])])
        return [body]

    def error(self, start_response: Callable, status: str, code: str, message: str,
              query_error: str | None = None) -> list[bytes]:
        extra = [("x-amzn-query-error", query_error)] if query_error else []
        return self.answer(start_response, status, encode({"__type": code, "message": message}), extra)


def error_body(code: str, message: str) -> bytes:
    """An error in the protocol's shape, for the emulator's injected faults."""
    return encode({"__type": code, "message": message})
