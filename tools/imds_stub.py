#!/usr/bin/env python3
"""A stand-in for the EC2 instance metadata service (IMDSv2), for wfboot's `whoami` tests.

    python tools/imds_stub.py [--port 0] [--role NAME] [--access-key-id K] [--secret S] [--token T]

Serves, on 127.0.0.1 only: PUT /latest/api/token (a session token, required by IMDSv2), and with that
token GET /latest/meta-data/iam/security-credentials/ (the role name) and .../<role> (temporary
credentials expiring in one hour). Everything else is 404. Prints `READY http://127.0.0.1:PORT` once
listening; exits when its stdin closes or on SIGTERM.
"""
import argparse
import datetime
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SESSION = "imds-session-token"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--role", default="wfboot-instance-role")
    p.add_argument("--access-key-id", default="ASIAIMDSTEST00000001")
    p.add_argument("--secret", default="imds-secret-DO-NOT-PRINT")
    p.add_argument("--token", default="imds-session-token-DO-NOT-PRINT")
    args = p.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def reply(self, status: int, body: str, content_type: str = "text/plain", ttl: str | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if ttl is not None:
                self.send_header("X-aws-ec2-metadata-token-ttl-seconds", ttl)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if self.path == "/latest/api/token" and ttl:
                self.reply(200, SESSION, ttl=ttl)
            else:
                self.reply(400, "")

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != SESSION:
                self.reply(401, "")
                return
            base = "/latest/meta-data/iam/security-credentials/"
            if self.path == base:
                self.reply(200, args.role)
            elif self.path == base + args.role:
                now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
                body = {
                    "Code": "Success",
                    "LastUpdated": now.isoformat().replace("+00:00", "Z"),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": args.access_key_id,
                    "SecretAccessKey": args.secret,
                    "Token": args.token,
                    "Expiration": (now + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                }
                self.reply(200, json.dumps(body), "application/json")
            else:
                self.reply(404, "")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())

    def watch_stdin() -> None:
        sys.stdin.read()
        server.shutdown()

    if not sys.stdin.isatty():
        threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
