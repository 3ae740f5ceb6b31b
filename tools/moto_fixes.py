"""Corrections to moto that the emulator (tools/emulator.py) applies before serving.

Signature checks of requests without a body. With IAM enforcement on (INITIAL_NO_AUTH_ACTION_COUNT reached), moto
recomputes each request's SigV4 signature. For the payload it takes the raw body or, when that is empty, its own
parsed view of the request (moto/iam/access_control.py, IAMRequestBase._create_aws_request:
`data=self._body or self._data`): for a GET such as lambda:ListFunctions that is the parsed query string, or even
the headers, so the payload hash never matches the empty payload the client signed, and every bodiless REST
request fails with SignatureDoesNotMatch, as an XML error on a rest-json service (no x-amzn-ErrorType header, so
the Rust SDK reads no error code from it). SigV4 signs an empty payload as the hash of the empty string
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html), so a request without a body
(Content-Length absent or 0) is checked against the empty payload; requests with a body are checked as before.
"""

from __future__ import annotations


def apply() -> None:
    from botocore.awsrequest import AWSRequest
    from moto.iam import access_control

    base = access_control.IAMRequestBase

    def create_aws_request(self) -> AWSRequest:
        signed_headers = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
        headers = self._create_headers_for_aws_request(signed_headers, self._headers)
        # moto's own view stays for a body it consumed while parsing a form (self._body empty, Content-Length not).
        sent = self._headers.get("Content-Length") or self._headers.get("content-length") or "0"
        data = self._body or (self._data if sent.strip() != "0" else b"")
        request = AWSRequest(method=self._method, url=self._path, data=data, headers=headers)
        request.context["timestamp"] = headers["X-Amz-Date"]
        return request

    base._create_aws_request = create_aws_request
