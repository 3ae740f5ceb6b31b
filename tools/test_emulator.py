#!/usr/bin/env python3
"""Tests of tools/emulator.py. Run with the sandbox venv:

    scripts/setup-emulator.sh && .venv/bin/python tools/test_emulator.py

Each test starts its own emulator subprocess on 127.0.0.1 with --port 0 and stops it by PID.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")

if (os.path.exists(VENV_PYTHON) and not os.environ.get("EMULATOR_TEST_REEXEC")
        and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(REPO, ".venv"))):
    # Started by another interpreter (`python3 tools/test_emulator.py`): use the sandbox venv,
    # which has moto for the emulator subprocess and boto3 for the tests.
    os.environ["EMULATOR_TEST_REEXEC"] = "1"  # never loop
    os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])
try:
    import boto3
    import moto  # noqa: F401  (needed by the emulator subprocess, which runs sys.executable)
except ImportError as e:
    sys.exit(f"{e}: run scripts/setup-emulator.sh first")
import botocore.exceptions
from botocore.config import Config
from botocore.parsers import ResponseParserError

EMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator.py")
ACCESS_KEY = "AKIAEMULATORTEST"
TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})


class Emulator:
    """An emulator subprocess; use as a context manager."""

    def __init__(self, *args: str, log: bool = True) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="emulator-test-")
        self.log_path = os.path.join(self.tmp.name, "requests.jsonl") if log else None
        cmd = [sys.executable, EMULATOR, "--port", "0", *args]
        if self.log_path:
            cmd += ["--log", self.log_path]
        self.stderr = open(os.path.join(self.tmp.name, "stderr"), "w+b")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY http://127.0.0.1:"):
            stderr = self.stderr_text()
            self.stop()
            raise AssertionError(f"no READY line, got {line!r}; stderr: {stderr}")
        self.url = line.split()[1]

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def client(self, service: str, attempts: int = 1, read_timeout: float = 20):
        # botocore's `max_attempts` counts retries only; `total_max_attempts` counts all tries.
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key="secret",
            config=Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                          connect_timeout=5, read_timeout=read_timeout),
        )

    def settle(self) -> None:
        """Realism: end every lag window now (POST /__emulator/control {"settle": true})."""
        import urllib.request
        request = urllib.request.Request(self.url + "/__emulator/control", data=b'{"settle": true}', method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()

    def log_entries(self) -> list[dict]:
        with open(self.log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.stderr):
            f.close()
        self.tmp.cleanup()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class EmulatorTest(unittest.TestCase):
    def test_iam_create_get_role_logged_as_write_and_read(self) -> None:
        with Emulator() as emu:
            iam = emu.client("iam")
            iam.create_role(RoleName="wf-test", AssumeRolePolicyDocument=TRUST)
            role = iam.get_role(RoleName="wf-test")["Role"]
            self.assertEqual(role["RoleName"], "wf-test")

            by_action = {e["action"]: e for e in emu.log_entries()}
            create, get = by_action["CreateRole"], by_action["GetRole"]
            for entry in (create, get):
                self.assertEqual(entry["service"], "iam")
                self.assertEqual(entry["access_key"], ACCESS_KEY)
                self.assertEqual(entry["status"], 200)
                self.assertIsNone(entry["fault"])
                self.assertFalse(entry["internal"])
                self.assertEqual(set(entry), {"t", "method", "path", "service", "action",
                                              "write", "status", "access_key", "fault",
                                              "ms", "moto_ms", "internal"})
                self.assertLessEqual(entry["moto_ms"], entry["ms"])
            self.assertIs(create["write"], True)
            self.assertIs(get["write"], False)

            with urllib.request.urlopen(emu.url + "/__emulator/stats") as r:
                stats = json.load(r)
            self.assertEqual(stats["requests"], 2)
            self.assertEqual(stats["writes"], 1)
            self.assertEqual(stats["by_action"], {"CreateRole": 1, "GetRole": 1})

    def test_sts_caller_identity_is_read_and_moto_api_is_internal(self) -> None:
        with Emulator() as emu:
            ident = emu.client("sts").get_caller_identity()
            self.assertEqual(len(ident["Account"]), 12)
            req = urllib.request.Request(emu.url + "/moto-api/reset", method="POST")
            with urllib.request.urlopen(req) as r:
                self.assertEqual(r.status, 200)
            entries = emu.log_entries()
            self.assertEqual(entries[0]["service"], "sts")
            self.assertEqual(entries[0]["action"], "GetCallerIdentity")
            self.assertIs(entries[0]["write"], False)
            self.assertEqual(entries[1]["service"], "moto-api")
            self.assertIs(entries[1]["internal"], True)
            self.assertIsNone(entries[1]["fault"])
            self.assertEqual(len(entries), 2)  # the stats endpoint is not logged

    def test_rest_actions_classified(self) -> None:
        with Emulator() as emu:
            emu.client("lambda").list_functions()
            emu.client("batch").describe_compute_environments()
            with self.assertRaises(botocore.exceptions.ClientError):
                emu.client("lambda").delete_function(FunctionName="missing")
            got = [(e["service"], e["action"], e["write"]) for e in emu.log_entries()]
            self.assertEqual(got, [
                ("lambda", "GET /2015-03-31/functions", False),
                ("batch", "POST /v1/describecomputeenvironments", False),
                ("lambda", "DELETE /2015-03-31/functions/missing", True),
            ])

    def test_managed_policies_loaded(self) -> None:
        with Emulator() as emu:
            arn = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
            policy = emu.client("iam").get_policy(PolicyArn=arn)["Policy"]
            self.assertEqual(policy["Arn"], arn)

    def test_latency_overlaps_across_concurrent_requests(self) -> None:
        # 400 ms each, sent at once: the emulator's log shows them in flight together.
        with Emulator("--latency-ms", "400") as emu:
            iam = emu.client("iam")
            iam.create_role(RoleName="wf-latency", AssumeRolePolicyDocument=TRUST)
            iam.get_role(RoleName="wf-latency")  # warm up connections and code paths
            errors: list[BaseException] = []

            def get_role() -> None:
                try:
                    iam.get_role(RoleName="wf-latency")
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=get_role) for _ in range(4)]
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
            self.assertEqual(errors, [])
            self.assertGreaterEqual(elapsed, 0.4)
            self.assertTrue(all(e["ms"] >= 400 for e in emu.log_entries()))
            # Overlapped, by the emulator's own clock: each GetRole arrived before the one before it was answered (one
            # at a time, none could). A loaded machine only makes each answer later, and the overlap larger.
            gets = sorted((e for e in emu.log_entries() if e["action"] == "GetRole"), key=lambda e: e["t"])[1:]
            self.assertEqual(len(gets), 4)
            for before, after in zip(gets, gets[1:]):
                self.assertLess(after["t"], before["t"] + before["ms"] / 1000,
                                f"4 × 400 ms took {elapsed:.3f} s, one after the other: not concurrent")

    def test_fault_throttle(self) -> None:
        with Emulator("--fault-rate", "1.0", "--fault-kinds", "throttle") as emu:
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                emu.client("iam").get_role(RoleName="x")
            self.assertEqual(cm.exception.response["Error"]["Code"], "Throttling")
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            # A JSON-protocol service gets a JSON error body.
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                emu.client("sqs").list_queues()
            self.assertEqual(cm.exception.response["Error"]["Code"], "ThrottlingException")
            entries = emu.log_entries()
            self.assertEqual([e["fault"] for e in entries], ["throttle", "throttle"])
            self.assertEqual([e["status"] for e in entries], [400, 400])
            self.assertEqual(entries[1]["service"], "sqs")
            self.assertEqual(entries[1]["action"], "ListQueues")
            # /moto-api/ is never faulted.
            req = urllib.request.Request(emu.url + "/moto-api/reset", method="POST")
            with urllib.request.urlopen(req) as r:
                self.assertEqual(r.status, 200)

    def test_fault_500_and_503(self) -> None:
        for kind, code in (("503", "ServiceUnavailable"), ("500", "InternalFailure")):
            with Emulator("--fault-rate", "1.0", "--fault-kinds", kind) as emu:
                with self.assertRaises(botocore.exceptions.ClientError) as cm:
                    emu.client("sts").get_caller_identity()
                response = cm.exception.response
                self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], int(kind))
                self.assertEqual(response["Error"]["Code"], code)
                # rest-json (lambda) gets a JSON error with x-amzn-ErrorType.
                with self.assertRaises(botocore.exceptions.ClientError) as cm:
                    emu.client("lambda").list_functions()
                self.assertEqual(cm.exception.response["Error"]["Code"], code)
                self.assertEqual([e["status"] for e in emu.log_entries()], [int(kind)] * 2)

    def test_fault_drop(self) -> None:
        with Emulator("--fault-rate", "1.0", "--fault-kinds", "drop") as emu:
            with self.assertRaises((botocore.exceptions.ConnectionClosedError,
                                    botocore.exceptions.EndpointConnectionError)):
                emu.client("iam").get_role(RoleName="x")
            # On the wire: not a single response byte, then a reset (or at least EOF).
            host, port = emu.url.rsplit("/", 1)[1].split(":")
            body = b"Action=GetRole&RoleName=x&Version=2010-05-08"
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: iam.amazonaws.com\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                try:
                    received = sock.recv(4096)
                except ConnectionResetError:
                    received = b""
                self.assertEqual(received, b"")
            entries = emu.log_entries()
            self.assertEqual([e["fault"] for e in entries], ["drop", "drop"])
            self.assertEqual([e["status"] for e in entries], [None, None])
            # The server keeps serving after a drop.
            with urllib.request.urlopen(emu.url + "/__emulator/stats") as r:
                self.assertEqual(json.load(r)["faults"], {"drop": 2})

    def _control(self, emu: "Emulator", body: dict) -> dict:
        req = urllib.request.Request(emu.url + "/__emulator/control", data=json.dumps(body).encode(),
                                     method="POST")
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def test_fault_drop_after_applies_the_write_then_drops_its_answer_and_spares_reads(self) -> None:
        with Emulator("--fault-rate", "1.0", "--fault-kinds", "drop-after") as emu:
            iam = emu.client("iam")  # one attempt: no retry
            with self.assertRaises((botocore.exceptions.ConnectionClosedError,
                                    botocore.exceptions.EndpointConnectionError)):
                iam.create_role(RoleName="wf-lost", AssumeRolePolicyDocument=TRUST)
            # The write took effect, and a read is never faulted by an after-kind.
            self.assertEqual(iam.get_role(RoleName="wf-lost")["Role"]["RoleName"], "wf-lost")
            # On the wire: not a single response byte for a write moto took (unsigned, so moto files it under
            # another account than the client's: the log below says it was applied).
            host, port = emu.url.rsplit("/", 1)[1].split(":")
            body = (b"Action=CreateRole&RoleName=wf-raw&Version=2010-05-08&AssumeRolePolicyDocument="
                    + urllib.parse.quote(TRUST).encode())
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: iam.amazonaws.com\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                try:
                    received = sock.recv(4096)
                except ConnectionResetError:
                    received = b""
                self.assertEqual(received, b"")
            # A write moto refuses is dropped all the same, and logged as not applied.
            with self.assertRaises((botocore.exceptions.ConnectionClosedError,
                                    botocore.exceptions.EndpointConnectionError)):
                iam.create_role(RoleName="wf-lost", AssumeRolePolicyDocument=TRUST)

            entries = emu.log_entries()
            self.assertEqual([(e["action"], e["fault"]) for e in entries],
                             [("CreateRole", "drop-after"), ("GetRole", None), ("CreateRole", "drop-after"),
                              ("CreateRole", "drop-after")])
            first, get, raw, again = entries
            self.assertEqual((raw["status"], raw["moto_status"], raw["applied"]), (None, 200, True))
            self.assertEqual((first["status"], first["moto_status"], first["applied"], first["write"]),
                             (None, 200, True, True))
            self.assertEqual((again["status"], again["moto_status"], again["applied"]), (None, 409, False))
            self.assertIn("EntityAlreadyExists", again["error"])
            self.assertNotIn("error", first)
            self.assertLessEqual(first["moto_ms"], first["ms"])
            self.assertEqual(get["status"], 200)
            self.assertNotIn("moto_status", get)
            self.assertNotIn("applied", get)
            with urllib.request.urlopen(emu.url + "/__emulator/stats") as r:
                stats = json.load(r)
            self.assertEqual(stats["faults"], {"drop-after": 3})
            self.assertEqual(stats["writes"], 3)

    def test_fault_500_after_applies_the_write_then_answers_service_failure(self) -> None:
        with Emulator("--fault-rate", "1.0", "--fault-kinds", "500-after") as emu:
            iam = emu.client("iam")
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                iam.create_role(RoleName="wf-500", AssumeRolePolicyDocument=TRUST)
            self.assertEqual(cm.exception.response["Error"]["Code"], "ServiceFailure")
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
            self.assertEqual(iam.get_role(RoleName="wf-500")["Role"]["RoleName"], "wf-500")
            # Another protocol keeps its own 500 (awsJson: InternalFailure in a JSON body); the write is done.
            sqs = emu.client("sqs")
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                sqs.create_queue(QueueName="wf-queue")
            self.assertEqual(cm.exception.response["Error"]["Code"], "InternalFailure")
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
            self.assertTrue(any(u.endswith("/wf-queue") for u in sqs.list_queues().get("QueueUrls", [])))

            # {"fault_rate": F} governs the after-kinds too.
            self.assertEqual(self._control(emu, {"fault_rate": 0})["fault_rate"], 0)
            iam.create_role(RoleName="wf-clean", AssumeRolePolicyDocument=TRUST)
            # A hold counts a 500-after write that took effect as one of its writes (the next one is held).
            state = self._control(emu, {"fault_rate": 1, "hold_after_writes": 1})
            self.assertEqual(state["fault_rate"], 1)
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                iam.create_role(RoleName="wf-500-again", AssumeRolePolicyDocument=TRUST)
            self.assertEqual(cm.exception.response["Error"]["Code"], "ServiceFailure")
            self.assertEqual(self._control(emu, {"hold_after_writes": None})["admitted_writes"], 1)
            self.assertEqual(iam.get_role(RoleName="wf-500-again")["Role"]["RoleName"], "wf-500-again")

            entries = emu.log_entries()
            self.assertEqual([(e["action"], e["fault"], e["status"]) for e in entries], [
                ("CreateRole", "500-after", 500), ("GetRole", None, 200),
                ("CreateQueue", "500-after", 500), ("ListQueues", None, 200),
                ("CreateRole", None, 200),
                ("CreateRole", "500-after", 500), ("GetRole", None, 200)])
            for e in (entries[0], entries[2], entries[5]):
                self.assertEqual((e["moto_status"], e["applied"]), (200, True))
            for e in (entries[1], entries[3], entries[4], entries[6]):
                self.assertEqual({"moto_status", "applied"} & set(e), set())

    def test_fault_draw_gives_reads_only_the_kinds_that_apply_and_older_kinds_draw_as_before(self) -> None:
        import random

        import emulator

        def middleware(kinds: list[str], rate: float, seed: int) -> "emulator.EmulatorMiddleware":
            return emulator.EmulatorMiddleware(None, None, 0.0, rate, kinds, seed, simulate=False)

        # The older kinds: the same random() then choice() as before the after-kinds existed.
        old = ["throttle", "500", "503", "drop"]
        m, ref = middleware(old, 0.4, 7), random.Random(7)
        writes = [i % 3 == 0 for i in range(200)]
        expected = [ref.choice(old) if ref.random() < 0.4 else None for _ in writes]
        self.assertEqual([m.pick_fault(w) for w in writes], expected)

        # Only after-kinds: a read gets none and leaves the RNG alone; writes meet the rate.
        m = middleware(["drop-after", "500-after"], 0.3, 11)
        before = m.rng.getstate()
        self.assertEqual({m.pick_fault(False) for _ in range(50)}, {None})
        self.assertEqual(m.rng.getstate(), before)
        got = [m.pick_fault(True) for _ in range(2000)]
        self.assertEqual(set(got), {None, "drop-after", "500-after"})
        self.assertLess(abs(sum(g is not None for g in got) / 2000 - 0.3), 0.05)

        # Mixed: a read draws among its applicable kinds only, a write among all; same seed, same faults.
        mixed = ["throttle", "drop-after", "503"]
        pattern = [i % 2 == 0 for i in range(400)]
        runs = [[m.pick_fault(w) for w in pattern] for m in (middleware(mixed, 1.0, 3), middleware(mixed, 1.0, 3))]
        self.assertEqual(runs[0], runs[1])
        self.assertEqual({f for f, w in zip(runs[0], pattern) if not w}, {"throttle", "503"})
        self.assertEqual({f for f, w in zip(runs[0], pattern) if w}, {"throttle", "drop-after", "503"})

    def _raw_get_role(self, emu: "Emulator", timeout: float) -> socket.socket:
        """A signed-looking GetRole sent on a raw socket (the log files it under ACCESS_KEY)."""
        host, port = emu.url.rsplit("/", 1)[1].split(":")
        body = b"Action=GetRole&RoleName=x&Version=2010-05-08"
        sock = socket.create_connection((host, int(port)), timeout=timeout)
        auth = (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20240101/us-east-1/iam/aws4_request, "
                "SignedHeaders=host, Signature=0").encode()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: iam.amazonaws.com\r\nAuthorization: " + auth +
                     b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        return sock

    def test_fault_blackhole_never_answers_keeps_serving_others_and_ends_when_the_client_closes(self) -> None:
        with Emulator("--fault-rate", "1.0", "--fault-kinds", "blackhole") as emu:
            sock = self._raw_get_role(emu, timeout=1.5)
            # Silent: not a byte, and the connection stays open (no reset, no EOF) while the client waits.
            with self.assertRaises(socket.timeout):
                sock.recv(4096)
            # The server answers its other requests meanwhile (the control API is never faulted; a second black
            # hole does not wait for the first).
            state = self._control(emu, {})
            self.assertEqual(state["in_flight"], 1)
            iam = emu.client("iam", read_timeout=1)
            second = self._try(lambda: iam.get_role(RoleName="x"))
            self.assertIsInstance(second, botocore.exceptions.ReadTimeoutError)
            # Once the clients close their connections, the request threads end.
            sock.close()
            iam.close()
            deadline = time.monotonic() + 5
            while self._control(emu, {})["in_flight"] and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(self._control(emu, {})["in_flight"], 0)
            entries = emu.log_entries()
            self.assertEqual([(e["action"], e["fault"], e["status"]) for e in entries],
                             [("GetRole", "blackhole", None)] * 2)
            self.assertTrue(all(e["ms"] >= 900 for e in entries), entries)
            self.assertNotIn("moto_ms", entries[0], "a black-holed request never reaches moto")

    def test_a_blackhole_the_client_never_closes_ends_after_the_cap(self) -> None:
        with Emulator("--fault-rate", "1.0", "--fault-kinds", "blackhole", "--blackhole-cap", "1") as emu:
            sock = self._raw_get_role(emu, timeout=10)
            started = time.monotonic()
            try:
                received = sock.recv(4096)
            except ConnectionResetError:
                received = b""
            self.assertEqual(received, b"")
            self.assertLess(time.monotonic() - started, 5)
            sock.close()
            self.assertEqual(self._control(emu, {})["in_flight"], 0)

    def test_fault_blackhole_after_applies_the_write_and_spares_reads(self) -> None:
        with Emulator("--fault-rate", "1.0", "--fault-kinds", "blackhole-after") as emu:
            iam = emu.client("iam", read_timeout=1)
            self.assertIsInstance(self._try(lambda: iam.create_role(RoleName="wf-hole", AssumeRolePolicyDocument=TRUST)),
                                  botocore.exceptions.ReadTimeoutError)
            self.assertEqual(iam.get_role(RoleName="wf-hole")["Role"]["RoleName"], "wf-hole")
            iam.close()
            deadline = time.monotonic() + 5
            while len(emu.log_entries()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            entries = sorted(emu.log_entries(), key=lambda e: e["t"])
            self.assertEqual([(e["action"], e["fault"]) for e in entries],
                             [("CreateRole", "blackhole-after"), ("GetRole", None)])
            self.assertEqual((entries[0]["status"], entries[0]["moto_status"], entries[0]["applied"]),
                             (None, 200, True))

    def test_fault_call_plans_a_fault_for_the_nth_request_of_an_action_without_drawing(self) -> None:
        with Emulator() as emu:
            iam = emu.client("iam", read_timeout=1)
            iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST)
            state = self._control(emu, {"fault_call": {"action": "GetRole", "nth": 2, "kind": "blackhole"}})
            self.assertEqual(state["fault_calls"][0]["nth"], 2)
            self.assertEqual(iam.get_role(RoleName="r")["Role"]["RoleName"], "r")
            self.assertIsInstance(self._try(lambda: iam.get_role(RoleName="r")), botocore.exceptions.ReadTimeoutError)
            self.assertEqual(iam.get_role(RoleName="r")["Role"]["RoleName"], "r", "only the 2nd, once")
            # An after-kind counts writes only; another key's requests are not counted when a key is named.
            self._control(emu, {"fault_call": {"action": "CreateRole", "nth": 1, "kind": "500-after",
                                               "access_key": "AKIASOMEONEELSE"}})
            iam.create_role(RoleName="s", AssumeRolePolicyDocument=TRUST)
            self.assertEqual(self._control(emu, {})["fault_calls"][0]["seen"], 0)
            iam.close()
            faults = [(e["action"], e["fault"]) for e in emu.log_entries() if e["fault"]]
            self.assertEqual(faults, [("GetRole", "blackhole")])
            req = urllib.request.Request(emu.url + "/__emulator/control", method="POST",
                                         data=json.dumps({"fault_call": {"action": "GetRole", "nth": 0,
                                                                         "kind": "blackhole"}}).encode())
            with self.assertRaises(urllib.error.HTTPError):
                urllib.request.urlopen(req)

    def test_slow_answers_an_action_late_but_correctly_and_others_at_once(self) -> None:
        with Emulator("--slow", "GetRole=0.8") as emu:
            iam = emu.client("iam")
            iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST)
            started = time.monotonic()
            self.assertEqual(iam.get_role(RoleName="r")["Role"]["RoleName"], "r")
            self.assertGreaterEqual(time.monotonic() - started, 0.8)
            started = time.monotonic()
            iam.list_roles()
            self.assertLess(time.monotonic() - started, 0.8)
            # The control API changes it: 0 ends it.
            self.assertEqual(self._control(emu, {"slow": {"GetRole": 0, "ListRoles": 0.5}})["slow"],
                             {"ListRoles": 0.5})
            entries = emu.log_entries()
            self.assertEqual([(e["action"], e.get("slow"), e["status"]) for e in entries],
                             [("CreateRole", None, 200), ("GetRole", 0.8, 200), ("ListRoles", None, 200)])
        import emulator
        self.assertEqual(emulator.parse_args(["--slow", "GetRole=2", "--slow", "ListRoles=1.5"]).slow,
                         {"GetRole": 2.0, "ListRoles": 1.5})

    def test_fault_kinds_default_leaves_the_after_kinds_out(self) -> None:
        import emulator
        self.assertEqual(emulator.parse_args(["--fault-rate", "0.5"]).fault_kinds, ["throttle", "500", "503", "drop"])
        self.assertEqual(emulator.parse_args(["--fault-kinds", "500-after,drop-after"]).fault_kinds,
                         ["500-after", "drop-after"])
        self.assertEqual(emulator.parse_args(["--fault-kinds", "blackhole,blackhole-after"]).fault_kinds,
                         ["blackhole", "blackhole-after"])
        self.assertNotIn("blackhole", emulator.DEFAULT_FAULT_KINDS)

    def test_hold_after_writes_holds_later_requests_until_released(self) -> None:
        with Emulator() as emu:
            iam = emu.client("iam")

            def control(body: dict) -> dict:
                req = urllib.request.Request(emu.url + "/__emulator/control", data=json.dumps(body).encode(),
                                             method="POST")
                with urllib.request.urlopen(req) as r:
                    return json.load(r)

            control({"hold_after_writes": 1})
            iam.create_role(RoleName="first", AssumeRolePolicyDocument=TRUST)
            results = []
            worker = threading.Thread(target=lambda: results.append(self._try(
                lambda: iam.create_role(RoleName="second", AssumeRolePolicyDocument=TRUST))))
            worker.start()
            worker.join(timeout=1.0)
            self.assertTrue(worker.is_alive(), "the second write should be held")
            state = control({"hold_after_writes": None})
            self.assertIsNone(state["hold_after_writes"])
            worker.join(timeout=10)
            self.assertEqual(len(results), 1)
            self.assertIsInstance(results[0], Exception, "a held request is dropped, never answered")
            names = [r["RoleName"] for r in iam.list_roles()["Roles"]]
            self.assertEqual(names, ["first"], "the held write must never reach moto")
            held = [e for e in emu.log_entries() if e["fault"] == "held"]
            self.assertEqual([e["action"] for e in held], ["CreateRole"])

    @staticmethod
    def _try(fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            return e

    def test_with_enforcement_a_signed_get_is_authorised_and_a_bad_signature_still_refused(self) -> None:
        # moto checked a bodiless request's signature over its own parse of the request (tools/moto_fixes.py).
        with Emulator(log=False) as emu:
            iam = emu.client("iam")
            keys = {}
            for name, managed in (("lambda-user", "AWSLambda_FullAccess"), ("sqs-user", "AmazonSQSReadOnlyAccess")):
                iam.create_user(UserName=name)
                iam.attach_user_policy(UserName=name, PolicyArn=f"arn:aws:iam::aws:policy/{managed}")
                keys[name] = iam.create_access_key(UserName=name)["AccessKey"]
            with urllib.request.urlopen(urllib.request.Request(
                    emu.url + "/moto-api/reset-auth", data=b"0", method="POST",
                    headers={"Content-Type": "text/plain"})) as r:
                self.assertEqual(r.status, 200)

            def lam(name: str, secret: str | None = None):
                key = keys[name]
                return boto3.client("lambda", endpoint_url=emu.url, region_name="us-east-1",
                                    aws_access_key_id=key["AccessKeyId"],
                                    aws_secret_access_key=secret or key["SecretAccessKey"],
                                    config=Config(retries={"total_max_attempts": 1}))

            self.assertEqual(lam("lambda-user").list_functions(MaxItems=1)["Functions"], [])
            for name, secret in (("lambda-user", "not-the-secret"), ("sqs-user", None)):
                with self.assertRaises(botocore.exceptions.ClientError) as cm:
                    lam(name, secret).list_functions(MaxItems=1)
                self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403, name)

    def test_ec2_answers_a_missing_profile_and_one_without_a_role_with_invalid_parameter_value(self) -> None:
        # moto answered IAM's NoSuchEntity (404) and accepted a role-less profile (tools/moto_fixes.py).
        with Emulator(log=False) as emu:
            iam, ec2 = emu.client("iam"), emu.client("ec2")
            account = emu.client("sts").get_caller_identity()["Account"]
            iam.create_instance_profile(InstanceProfileName="Empty")
            iid = ec2.run_instances(ImageId=probe_ami(emu), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
            missing_arn = f"arn:aws:iam::{account}:instance-profile/Missing"
            expected = {
                "Missing": "Value (Missing) for parameter iamInstanceProfile.name is invalid. "
                           "Invalid IAM Instance Profile name",
                missing_arn: f"Value ({missing_arn}) for parameter iamInstanceProfile.arn is invalid. "
                             "Invalid IAM Instance Profile ARN",
                "Empty": f'IAM Instance Profile "arn:aws:iam::{account}:instance-profile/Empty" has no associated '
                         "IAM Roles",
            }
            for profile, message in expected.items():
                given = {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
                for call in (lambda: ec2.run_instances(ImageId=probe_ami(emu), MinCount=1, MaxCount=1, DryRun=True,
                                                       IamInstanceProfile=given),
                             lambda: ec2.run_instances(ImageId=probe_ami(emu), MinCount=1, MaxCount=1,
                                                       IamInstanceProfile=given),
                             lambda: ec2.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile=given)):
                    with self.assertRaises(botocore.exceptions.ClientError) as cm:
                        call()
                    self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidParameterValue", profile)
                    self.assertEqual(cm.exception.response["Error"]["Message"], message)
                    self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            self.assertEqual(len(ec2.describe_instances()["Reservations"]), 1, "only the plain launch made one")
            self.assertEqual(ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"], [])
            # Without realism there is no service lag: Lambda takes a role made a moment ago.
            role = iam.create_role(RoleName="L", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
            emu.client("lambda").create_function(FunctionName="f", Runtime="python3.12", Role=role,
                                                 Handler="index.handler", Code={"ZipFile": tiny_zip()})

    def test_ec2_modify_instance_metadata_options_keeps_what_it_does_not_name(self) -> None:
        # moto rebuilt the options from the request alone: the hop limit fell back to 1, the endpoint went missing
        # (tools/moto_fixes.py). A running instance's change is applied at once without realism.
        with Emulator(log=False) as emu:
            ec2 = emu.client("ec2")
            iid = ec2.run_instances(ImageId=probe_ami(emu), MinCount=1, MaxCount=1,
                                    MetadataOptions={"HttpPutResponseHopLimit": 2,
                                                     "InstanceMetadataTags": "enabled"})["Instances"][0]["InstanceId"]
            answered = ec2.modify_instance_metadata_options(InstanceId=iid, HttpTokens="required")
            shown = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
            expected = {"State": "applied", "HttpTokens": "required", "HttpPutResponseHopLimit": 2,
                        "HttpEndpoint": "enabled", "HttpProtocolIpv6": "disabled", "InstanceMetadataTags": "enabled"}
            self.assertEqual(answered["InstanceMetadataOptions"], expected)
            self.assertEqual(shown, expected)
            ec2.modify_instance_metadata_options(InstanceId=iid, HttpEndpoint="disabled")
            shown = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
            self.assertEqual((shown["HttpTokens"], shown["HttpEndpoint"]), ("required", "disabled"))

    def test_ec2_instance_metadata_defaults_are_per_account_and_region_and_new_instances_take_them(self) -> None:
        # moto answered HTTP 500, not implemented (tools/moto_fixes.py).
        with Emulator() as emu:
            ec2 = emu.client("ec2")
            self.assertEqual(ec2.get_instance_metadata_defaults()["AccountLevel"], {}, "nothing set: no preference")
            self.assertTrue(ec2.modify_instance_metadata_defaults(HttpTokens="required", HttpPutResponseHopLimit=2)
                            ["Return"])
            self.assertEqual(ec2.get_instance_metadata_defaults()["AccountLevel"],
                             {"HttpTokens": "required", "HttpPutResponseHopLimit": 2})
            other_region = boto3.client("ec2", endpoint_url=emu.url, region_name="eu-west-1",
                                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key="secret")
            self.assertEqual(other_region.get_instance_metadata_defaults()["AccountLevel"], {})
            c = emu.client("sts").assume_role(RoleArn="arn:aws:iam::111111111111:role/X",
                                              RoleSessionName="test")["Credentials"]
            other_account = boto3.client("ec2", endpoint_url=emu.url, region_name="us-east-1",
                                         aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                                         aws_session_token=c["SessionToken"])
            self.assertEqual(other_account.get_instance_metadata_defaults()["AccountLevel"], {})
            # A new instance takes each default its launch does not set.
            new = ec2.run_instances(ImageId=probe_ami(emu), MinCount=1, MaxCount=1)["Instances"][0]["MetadataOptions"]
            self.assertEqual((new["HttpTokens"], new["HttpPutResponseHopLimit"]), ("required", 2))
            own = ec2.run_instances(ImageId=probe_ami(emu), MinCount=1, MaxCount=1,
                                    MetadataOptions={"HttpTokens": "optional"})["Instances"][0]["MetadataOptions"]
            self.assertEqual((own["HttpTokens"], own["HttpPutResponseHopLimit"]), ("optional", 2))
            ec2.modify_instance_metadata_defaults(HttpTokens="no-preference", HttpPutResponseHopLimit=-1)
            self.assertEqual(ec2.get_instance_metadata_defaults()["AccountLevel"], {})
            actions = [(e["action"], e["write"], e["status"]) for e in emu.log_entries()
                       if "MetadataDefaults" in e["action"]]
            self.assertEqual(actions[:2], [("GetInstanceMetadataDefaults", False, 200),
                                           ("ModifyInstanceMetadataDefaults", True, 200)])

    def test_cloudwatch_answers_the_rpc_v2_cbor_protocol_the_sdks_send(self) -> None:
        # moto parses CloudWatch's awsJson and awsQuery only; the SDKs now send Smithy RPC v2 CBOR
        # (tools/rpcv2_cbor.py). boto3 still sends awsJson, which goes on working.
        sys.path.insert(0, os.path.dirname(EMULATOR))
        import rpcv2_cbor
        with Emulator() as emu:
            now = time.time()
            emu.client("cloudwatch").put_metric_data(Namespace="AWS/EC2", MetricData=[
                {"MetricName": "MetadataNoToken", "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}],
                 "Timestamp": now - 3 * 86400, "Value": 30, "Unit": "Count"}])

            def cbor_call(operation: str, fields: dict, timestamps: dict) -> tuple[int, dict, dict]:
                body = rpcv2_cbor.head(5, len(fields) + len(timestamps))
                for k, v in fields.items():
                    body += rpcv2_cbor.encode(k) + rpcv2_cbor.encode(v)
                for k, v in timestamps.items():  # tag 1, epoch seconds
                    body += rpcv2_cbor.encode(k) + b"\xc1" + rpcv2_cbor.encode(float(v))
                request = urllib.request.Request(
                    f"{emu.url}/service/GraniteServiceVersion20100801/operation/{operation}", data=body,
                    method="POST", headers={
                        "smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
                        "Authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/monitoring/"
                                         "aws4_request, SignedHeaders=host, Signature=0"})
                try:
                    with urllib.request.urlopen(request, timeout=20) as r:
                        return r.status, dict(r.headers), rpcv2_cbor.decode(r.read())
                except urllib.error.HTTPError as e:
                    return e.code, dict(e.headers), rpcv2_cbor.decode(e.read())

            query = {"Namespace": "AWS/EC2", "MetricName": "MetadataNoToken",
                     "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}], "Period": 86400, "Statistics": ["Sum"]}
            status, headers, out = cbor_call("GetMetricStatistics", query,
                                             {"StartTime": now - 14 * 86400, "EndTime": now})
            self.assertEqual((status, headers["smithy-protocol"], headers["Content-Type"]),
                             (200, "rpc-v2-cbor", "application/cbor"))
            self.assertEqual([(p["Sum"], p["Unit"]) for p in out["Datapoints"]], [(30.0, "Count")])
            self.assertAlmostEqual(out["Datapoints"][0]["Timestamp"], now - 3 * 86400, delta=1)
            # moto's error, in the protocol's shape: the error's name in __type.
            status, headers, out = cbor_call("GetMetricStatistics", query, {"StartTime": now, "EndTime": now - 60})
            self.assertEqual((status, out["__type"], headers["x-amzn-query-error"]),
                             (400, "InvalidParameterValueException", "InvalidParameterValue;Sender"))
            self.assertIn("StartTime", out["message"])
            logged = [(e["path"].rsplit("/", 1)[-1], e["action"], e["write"]) for e in emu.log_entries()
                      if e["service"] == "monitoring"]
            self.assertEqual(logged, [("", "PutMetricData", True),
                                      ("GetMetricStatistics", "GetMetricStatistics", False),
                                      ("GetMetricStatistics", "GetMetricStatistics", False)])
        with Emulator("--fault-rate", "1", "--fault-kinds", "throttle") as emu:
            status, _, out = cbor_call("GetMetricStatistics", query, {"StartTime": now - 60, "EndTime": now})
            self.assertEqual((status, out["__type"]), (400, "ThrottlingException"), "an injected fault speaks CBOR")

    def test_organizations_reads_from_a_member_account_are_access_denied_and_outside_any_not_in_use(self) -> None:
        # moto answered AccountNotFoundException from a member account's own empty backend (tools/moto_fixes.py).
        with Emulator(log=False) as emu:
            org = emu.client("organizations")
            org.create_organization(FeatureSet="ALL")
            root = org.list_roots()["Roots"][0]["Id"]
            member = org.create_account(Email="m@example.com", AccountName="m")["CreateAccountStatus"]["AccountId"]
            self.assertEqual(org.list_parents(ChildId=member)["Parents"], [{"Id": root, "Type": "ROOT"}])

            inside, outside = organizations_as(emu, member), organizations_as(emu, "999999999999")
            self.assertEqual(inside.describe_organization()["Organization"]["MasterAccountId"],
                             emu.client("sts").get_caller_identity()["Account"])
            for client, code in ((inside, "AccessDeniedException"), (outside, "AWSOrganizationsNotInUseException")):
                for call in (lambda: client.list_parents(ChildId=member),
                             lambda: client.list_policies_for_target(TargetId=member,
                                                                     Filter="SERVICE_CONTROL_POLICY"),
                             lambda: client.describe_policy(PolicyId="p-FullAWSAccess")):
                    with self.assertRaises(botocore.exceptions.ClientError) as cm:
                        call()
                    self.assertEqual(cm.exception.response["Error"]["Code"], code)

    def test_a_delegated_administrator_reads_the_management_accounts_organisation_and_another_member_is_refused(
            self) -> None:
        # moto answered each member from its own empty backend (tools/moto_fixes.py, fix_organizations_member_reads).
        with Emulator(log=False) as emu:
            org = emu.client("organizations")
            org.create_organization(FeatureSet="ALL")
            root = org.list_roots()["Roots"][0]["Id"]
            ou = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
            child = org.create_organizational_unit(ParentId=ou, Name="team")["OrganizationalUnit"]["Id"]
            ids = [org.create_account(Email=f"{n}@example.com", AccountName=n)["CreateAccountStatus"]["AccountId"]
                   for n in ("stacksets-admin", "guardduty-admin", "plain")]
            for account in ids:
                org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
            deny = json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*"}]})
            scp = org.create_policy(Name="NoRoles", Description="d", Type="SERVICE_CONTROL_POLICY",
                                    Content=deny)["Policy"]["PolicySummary"]["Id"]
            org.attach_policy(PolicyId=scp, TargetId=ou)
            org.enable_aws_service_access(ServicePrincipal=STACKSETS_PRINCIPAL)
            org.register_delegated_administrator(AccountId=ids[0], ServicePrincipal=STACKSETS_PRINCIPAL)
            org.register_delegated_administrator(AccountId=ids[1], ServicePrincipal="guardduty.amazonaws.com")
            management = emu.client("sts").get_caller_identity()["Account"]

            def reads(client) -> dict[str, Any]:
                return {
                    "roots": [r["Id"] for r in client.list_roots()["Roots"]],
                    "accounts": sorted(a["Id"] for a in client.list_accounts_for_parent(ParentId=ou)["Accounts"]),
                    "ous": [o["Id"] for o in client.list_organizational_units_for_parent(ParentId=ou)[
                        "OrganizationalUnits"]],
                    "ou_name": client.describe_organizational_unit(OrganizationalUnitId=ou)["OrganizationalUnit"]["Name"],
                    "parents": client.list_parents(ChildId=ids[2])["Parents"],
                    "scps_at_ou": sorted(p["Id"] for p in client.list_policies_for_target(
                        TargetId=ou, Filter="SERVICE_CONTROL_POLICY")["Policies"]),
                    "scps": sorted(p["Id"] for p in client.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]),
                    "scp": json.loads(client.describe_policy(PolicyId=scp)["Policy"]["Content"]),
                    "trusted": [s["ServicePrincipal"] for s in
                                client.list_aws_service_access_for_organization()["EnabledServicePrincipals"]],
                    "stacksets_admins": [a["Id"] for a in client.list_delegated_administrators(
                        ServicePrincipal=STACKSETS_PRINCIPAL)["DelegatedAdministrators"]],
                    "services_of_admin": [s["ServicePrincipal"] for s in client.list_delegated_services_for_account(
                        AccountId=ids[0])["DelegatedServices"]],
                }

            expected = reads(org)  # the management account's answers
            self.assertEqual((expected["accounts"], expected["ous"], expected["parents"], expected["scps_at_ou"]),
                             (sorted(ids), [child], [{"Id": ou, "Type": "ORGANIZATIONAL_UNIT"}],
                              sorted(["p-FullAWSAccess", scp])))
            self.assertEqual((expected["stacksets_admins"], expected["services_of_admin"]), ([ids[0]],
                                                                                            [STACKSETS_PRINCIPAL]))
            # A delegated administrator, for StackSets or for another service: the management account's answers.
            for admin in ids[:2]:
                self.assertEqual(reads(organizations_as(emu, admin)), expected, admin)
            # A member that is no delegated administrator: AccessDeniedException for each of them, but
            # DescribeOrganization, which every member may call.
            plain = organizations_as(emu, ids[2])
            self.assertEqual(plain.describe_organization()["Organization"]["MasterAccountId"], management)
            for call in (lambda: plain.list_roots(), lambda: plain.list_accounts_for_parent(ParentId=ou),
                         lambda: plain.list_organizational_units_for_parent(ParentId=ou),
                         lambda: plain.describe_organizational_unit(OrganizationalUnitId=ou),
                         lambda: plain.list_policies(Filter="SERVICE_CONTROL_POLICY"),
                         lambda: plain.list_policies_for_target(TargetId=ou, Filter="SERVICE_CONTROL_POLICY"),
                         lambda: plain.describe_policy(PolicyId=scp),
                         lambda: plain.list_aws_service_access_for_organization(),
                         lambda: plain.list_delegated_administrators(ServicePrincipal=STACKSETS_PRINCIPAL),
                         lambda: plain.list_delegated_services_for_account(AccountId=ids[2])):
                with self.assertRaises(botocore.exceptions.ClientError) as cm:
                    call()
                self.assertEqual(cm.exception.response["Error"]["Code"], "AccessDeniedException")
            # Deregistered from its only service, the admin is an ordinary member again.
            org.deregister_delegated_administrator(AccountId=ids[1], ServicePrincipal="guardduty.amazonaws.com")
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                organizations_as(emu, ids[1]).list_accounts_for_parent(ParentId=ou)
            self.assertEqual(cm.exception.response["Error"]["Code"], "AccessDeniedException")

    def test_exits_when_stdin_closes(self) -> None:
        with Emulator(log=False) as emu:
            emu.proc.stdin.close()
            start = time.monotonic()
            code = emu.proc.wait(timeout=10)
            self.assertEqual(code, 0)
            self.assertLess(time.monotonic() - start, 10)

    def test_exits_on_sigterm(self) -> None:
        with Emulator(log=False) as emu:
            emu.proc.terminate()
            self.assertEqual(emu.proc.wait(timeout=10), 0)

    def test_the_stackset_flag_is_checked(self) -> None:
        proc = subprocess.run([sys.executable, EMULATOR, "--stackset-account-seconds", "-1"], capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--stackset-account-seconds must be >= 0", proc.stderr)

    def test_non_loopback_host_refused(self) -> None:
        for host in ("0.0.0.0", "192.168.1.10", "::1", "localhost"):
            proc = subprocess.run([sys.executable, EMULATOR, "--host", host, "--port", "0"],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            self.assertEqual(proc.returncode, 2, host)
            self.assertEqual(proc.stdout, b"", host)
            self.assertIn(b"127.0.0.0/8", proc.stderr, host)



def policy_arn(name: str) -> str:
    return f"arn:aws:iam::aws:policy/{name}"


def code_of(fn) -> tuple[str, int] | None:
    """The AWS error code and HTTP status fn() was answered with, or None when it succeeded."""
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None


def tiny_zip() -> bytes:
    """A Lambda deployment package of one Python handler (moto keeps it; nothing runs it)."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return None\n")
    return buf.getvalue()


def probe_ami(emu: "Emulator") -> str:
    """The ECS-optimized AMI from SSM's public parameter, as a probe on AWS would take it (moto serves it)."""
    return emu.client("ssm").get_parameter(
        Name="/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id")["Parameter"]["Value"]


def organizations_as(emu: "Emulator", account: str):
    """An Organizations client with the credentials of a session in `account` (moto lets anyone assume any role)."""
    c = emu.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/R",
                                      RoleSessionName="test")["Credentials"]
    return boto3.client("organizations", endpoint_url=emu.url, region_name="us-east-1",
                        aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                        aws_session_token=c["SessionToken"])


def batch_roles(iam) -> tuple[str, str, str]:
    """A Batch service role, an ECS instance profile with its role and a spot fleet role: their ARNs."""
    def role(name: str, service: str) -> str:
        trust = TRUST.replace("lambda.amazonaws.com", service)
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]

    service_role = role("BatchService", "batch.amazonaws.com")
    role("EcsInstance", "ec2.amazonaws.com")
    profile = iam.create_instance_profile(InstanceProfileName="EcsInstance")["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName="EcsInstance", RoleName="EcsInstance")
    return service_role, profile, role("SpotFleet", "spotfleet.amazonaws.com")


def compute_environment(emu: "Emulator", name: str, service_role: str, profile: str, fleet_role: str) -> dict:
    """CreateComputeEnvironment's parameters for a managed SPOT environment of no instances in moto's default VPC."""
    ec2 = emu.client("ec2")
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"])
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                  {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    return dict(computeEnvironmentName=name, type="MANAGED", state="DISABLED", serviceRole=service_role,
                tags={"wfboot:stack": "test"},
                computeResources={"type": "SPOT", "minvCpus": 0, "maxvCpus": 1, "desiredvCpus": 0,
                                  "instanceTypes": ["optimal"], "subnets": [subnet],
                                  "securityGroupIds": [group["GroupId"]], "instanceRole": profile,
                                  "spotIamFleetRole": fleet_role, "bidPercentage": 100})


class RealismTest(unittest.TestCase):
    """tools/realism.py: what real AWS does that moto does not (--realism and its finer flags)."""

    FAST = ("--iam-lag", "0.6", "--ec2-lag", "1.5", "--lag-jitter", "0")

    def test_a_new_role_reads_as_missing_for_the_lag_then_appears(self) -> None:
        with Emulator("--realism", *self.FAST) as emu:
            iam = emu.client("iam")
            iam.create_role(RoleName="R", AssumeRolePolicyDocument=TRUST)
            self.assertEqual(code_of(lambda: iam.get_role(RoleName="R")), ("NoSuchEntity", 404))
            self.assertEqual(code_of(lambda: iam.list_attached_role_policies(RoleName="R")), ("NoSuchEntity", 404))
            time.sleep(0.7)
            self.assertEqual(iam.get_role(RoleName="R")["Role"]["RoleName"], "R")
            gets = [e for e in emu.log_entries() if e["action"] == "GetRole"]
            self.assertEqual([e.get("realism") for e in gets], ["stale_read", None])
            self.assertEqual([e["status"] for e in gets], [404, 200])
            self.assertNotIn("realism", gets[1], "only what realism answered is marked")

    def test_a_write_whose_answer_was_dropped_lags_like_any_other(self) -> None:
        # drop-after: the client lost the answer, and a read right after still says the role is not there.
        with Emulator("--iam-lag", "2", "--lag-jitter", "0", "--fault-rate", "1", "--fault-kinds", "drop-after") as emu:
            iam = emu.client("iam")
            with self.assertRaises((botocore.exceptions.ConnectionClosedError,
                                    botocore.exceptions.EndpointConnectionError)):
                iam.create_role(RoleName="R", AssumeRolePolicyDocument=TRUST)
            self.assertEqual(code_of(lambda: iam.get_role(RoleName="R")), ("NoSuchEntity", 404))
            time.sleep(2.1)
            self.assertEqual(iam.get_role(RoleName="R")["Role"]["RoleName"], "R")
            entries = emu.log_entries()
            self.assertEqual([(e["action"], e["fault"], e.get("realism"), e.get("applied")) for e in entries],
                             [("CreateRole", "drop-after", None, True), ("GetRole", None, "stale_read", None),
                              ("GetRole", None, None, None)])

    def test_a_relationship_reads_as_before_the_write_and_a_deleted_role_as_still_there(self) -> None:
        with Emulator("--iam-lag", "0.6", "--lag-jitter", "0") as emu:
            iam = emu.client("iam")
            iam.create_role(RoleName="R", AssumeRolePolicyDocument=TRUST)
            time.sleep(0.7)
            iam.attach_role_policy(RoleName="R", PolicyArn=policy_arn("AmazonS3FullAccess"))
            self.assertEqual(iam.list_attached_role_policies(RoleName="R")["AttachedPolicies"], [])
            time.sleep(0.7)
            attached = iam.list_attached_role_policies(RoleName="R")["AttachedPolicies"]
            self.assertEqual([p["PolicyName"] for p in attached], ["AmazonS3FullAccess"])
            iam.detach_role_policy(RoleName="R", PolicyArn=policy_arn("AmazonS3FullAccess"))
            iam.delete_role(RoleName="R")
            self.assertEqual(iam.get_role(RoleName="R")["Role"]["RoleName"], "R", "a delete lags too")
            time.sleep(0.7)
            self.assertEqual(code_of(lambda: iam.get_role(RoleName="R")), ("NoSuchEntity", 404))

    def test_ec2_refuses_a_new_profile_and_one_just_given_its_role_with_aws_messages_a_dry_run_too(self) -> None:
        # A 4 s window: the calls asserted inside it must all land in it on a loaded machine.
        with Emulator("--ec2-lag", "4", "--lag-jitter", "0") as emu:
            iam, ec2 = emu.client("iam"), emu.client("ec2")
            iid = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
            iam.create_role(RoleName="R", AssumeRolePolicyDocument=TRUST)
            profile = iam.create_instance_profile(InstanceProfileName="P")["InstanceProfile"]
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                ec2.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile={"Name": "P"})
            self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidParameterValue")
            self.assertEqual(cm.exception.response["Error"]["Message"],
                             "Value (P) for parameter iamInstanceProfile.name is invalid. "
                             "Invalid IAM Instance Profile name")
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                ec2.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile={"Arn": profile["Arn"]})
            self.assertTrue(cm.exception.response["Error"]["Message"].endswith("Invalid IAM Instance Profile ARN"))
            time.sleep(4.1)
            iam.add_role_to_instance_profile(InstanceProfileName="P", RoleName="R")
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                ec2.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile={"Name": "P"})
            self.assertEqual(cm.exception.response["Error"]["Message"],
                             f'IAM Instance Profile "{profile["Arn"]}" has no associated IAM Roles')
            # A RunInstances dry run (a probe of EC2's view) is refused the same way, before moto's DryRun answer.
            dry_run = dict(ImageId=probe_ami(emu), InstanceType="t3.micro", MinCount=1, MaxCount=1, DryRun=True,
                           IamInstanceProfile={"Name": "P"})
            self.assertEqual(code_of(lambda: ec2.run_instances(**dry_run)), ("InvalidParameterValue", 400))
            time.sleep(4.1)
            self.assertEqual(code_of(lambda: ec2.run_instances(**dry_run)), ("DryRunOperation", 412))
            state = ec2.associate_iam_instance_profile(InstanceId=iid, IamInstanceProfile={"Name": "P"})
            self.assertEqual(state["IamInstanceProfileAssociation"]["State"], "associating")
            refused = [e for e in emu.log_entries() if e.get("realism") == "ec2_not_propagated"]
            self.assertEqual(len(refused), 4)
            self.assertEqual(len(ec2.describe_instances()["Reservations"]), 1, "the dry runs launched nothing")

    def test_concurrent_writes_to_one_entity_meet_concurrent_modification_and_sequential_ones_do_not(self) -> None:
        with Emulator("--concurrent-modification", "--write-hold", "0.3") as emu:
            iam = emu.client("iam")
            iam.create_user(UserName="u")
            results: list = []
            policies = ["AmazonS3FullAccess", "AmazonSQSFullAccess", "IAMReadOnlyAccess"]
            threads = [threading.Thread(target=lambda p=p: results.append(
                code_of(lambda: iam.attach_user_policy(UserName="u", PolicyArn=policy_arn(p))))) for p in policies]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(sorted(results, key=str), [("ConcurrentModification", 409)] * 2 + [None])
            # One after the other, every write goes through; another entity is never held by this one's write.
            for p in policies:
                iam.attach_user_policy(UserName="u", PolicyArn=policy_arn(p))
            refused = [e for e in emu.log_entries() if e.get("realism") == "concurrent_modification"]
            self.assertEqual(len(refused), 2)
            self.assertIn("<Code>ConcurrentModification</Code>", refused[0]["error"])
            self.assertIn("<Type>Sender</Type>", refused[0]["error"])
            self.assertNotIn("moto_ms", refused[0], "refused before reaching moto")

    def test_a_delete_right_after_the_last_detach_meets_delete_conflict_then_succeeds(self) -> None:
        with Emulator("--delete-conflict", "0.6", "--lag-jitter", "0") as emu:
            iam = emu.client("iam")
            iam.create_role(RoleName="R", AssumeRolePolicyDocument=TRUST)
            doc = json.dumps({"Version": "2012-10-17",
                              "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
            arn = iam.create_policy(PolicyName="P", PolicyDocument=doc)["Policy"]["Arn"]
            iam.attach_role_policy(RoleName="R", PolicyArn=arn)
            iam.detach_role_policy(RoleName="R", PolicyArn=arn)
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                iam.delete_role(RoleName="R")
            self.assertEqual(cm.exception.response["Error"]["Code"], "DeleteConflict")
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 409)
            self.assertEqual(cm.exception.response["Error"]["Message"],
                             "Cannot delete entity, must detach all policies first.")
            self.assertEqual(code_of(lambda: iam.delete_policy(PolicyArn=arn)), ("DeleteConflict", 409))
            time.sleep(0.7)
            iam.delete_role(RoleName="R")
            iam.delete_policy(PolicyArn=arn)

    def test_deletes_iam_refuses_while_something_holds_the_entity_are_refused_in_realism(self) -> None:
        with Emulator("--realism", *self.FAST) as emu:
            iam = emu.client("iam")
            iam.create_role(RoleName="R", AssumeRolePolicyDocument=TRUST)
            doc = json.dumps({"Version": "2012-10-17",
                              "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
            arn = iam.create_policy(PolicyName="P", PolicyDocument=doc)["Policy"]["Arn"]
            iam.create_instance_profile(InstanceProfileName="IP")
            time.sleep(0.7)
            iam.attach_role_policy(RoleName="R", PolicyArn=arn)
            iam.add_role_to_instance_profile(InstanceProfileName="IP", RoleName="R")
            iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc, SetAsDefault=True)
            emu.settle()

            def refused(call) -> tuple[str, int, str]:
                with self.assertRaises(botocore.exceptions.ClientError) as cm:
                    call()
                e = cm.exception.response
                return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Message"]

            self.assertEqual(refused(lambda: iam.delete_policy(PolicyArn=arn)),
                             ("DeleteConflict", 409, "Cannot delete a policy attached to entities."))
            self.assertEqual(refused(lambda: iam.delete_role(RoleName="R"))[:2], ("DeleteConflict", 409))
            self.assertEqual(refused(lambda: iam.delete_instance_profile(InstanceProfileName="IP")),
                             ("DeleteConflict", 409, "Cannot delete entity, must remove roles from instance profile first."))
            iam.detach_role_policy(RoleName="R", PolicyArn=arn)
            emu.settle()
            code, status, message = refused(lambda: iam.delete_policy(PolicyArn=arn))
            self.assertEqual((code, status), ("DeleteConflict", 409))
            self.assertIn("must delete the policy's versions", message)
            iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
            emu.settle()
            iam.delete_policy(PolicyArn=arn)
            refusals = [e for e in emu.log_entries() if e.get("realism") == "delete_precondition"]
            self.assertEqual(len(refusals), 2, "the DeletePolicy refusals are realism's; moto's own are not marked")

    def test_a_compute_environment_whose_service_role_is_deleted_reads_invalid(self) -> None:
        with Emulator("--realism", *self.FAST, "--service-lag", "0", "--batch-transition", "0.1") as emu:
            iam, batch = emu.client("iam"), emu.client("batch")
            role = iam.create_role(RoleName="S", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
            emu.settle()
            batch.create_compute_environment(computeEnvironmentName="gpu-spot", type="UNMANAGED", serviceRole=role)
            time.sleep(0.2)
            self.assertEqual(batch.describe_compute_environments()["computeEnvironments"][0]["status"], "VALID")
            iam.delete_role(RoleName="S")
            ce = batch.describe_compute_environments()["computeEnvironments"][0]
            self.assertEqual(ce["status"], "INVALID")
            self.assertTrue(ce["statusReason"].startswith("CLIENT_ERROR - User: batch.amazonaws.com is not authorized "
                                                          "to perform: sts:AssumeRole on resource: " + role), ce)

    def test_lambda_refuses_a_new_role_and_a_re_trusted_one_for_the_service_lag_with_aws_error(self) -> None:
        with Emulator("--service-lag", "1.0", "--lag-jitter", "0") as emu:
            iam, lam = emu.client("iam"), emu.client("lambda")
            role = iam.create_role(RoleName="L", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
            create = lambda name: lam.create_function(  # noqa: E731
                FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler",
                Code={"ZipFile": tiny_zip()}, Tags={"wfboot:stack": "test"})
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                create("probe")
            error = cm.exception.response
            self.assertEqual(error["Error"]["Code"], "InvalidParameterValueException")
            self.assertEqual(error["Error"]["Message"], "The role defined for the function cannot be assumed by Lambda.")
            self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 400)
            self.assertEqual(error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"],
                             "InvalidParameterValueException")
            self.assertEqual(lam.list_functions()["Functions"], [], "the refused create made nothing")
            time.sleep(1.1)
            self.assertEqual(create("probe")["Role"], role)
            self.assertEqual(lam.list_tags(Resource=lam.get_function(FunctionName="probe")["Configuration"]
                                           ["FunctionArn"])["Tags"], {"wfboot:stack": "test"})
            lam.delete_function(FunctionName="probe")
            # A trust update starts the window again: the role's new trust is not seen by Lambda at once.
            iam.update_assume_role_policy(RoleName="L", PolicyDocument=TRUST)
            self.assertEqual(code_of(lambda: create("again")), ("InvalidParameterValueException", 400))
            self.assertEqual(code_of(lambda: lam.update_function_configuration(FunctionName="missing", Role=role)),
                             ("InvalidParameterValueException", 400), "UpdateFunctionConfiguration too")
            # Another role, made before: not in any window (stock moto's own check still applies to a missing one).
            self.assertEqual(code_of(lambda: lam.create_function(
                FunctionName="x", Runtime="python3.12", Role=role.replace(":role/L", ":role/Missing"),
                Handler="index.handler", Code={"ZipFile": tiny_zip()})), ("InvalidParameterValueException", 400))
            refused = [e for e in emu.log_entries() if e.get("realism") == "service_role_not_propagated"]
            self.assertEqual(len(refused), 3)
            self.assertTrue(all("moto_ms" in e for e in refused), "answered inside the moto lock, in order")

    def test_step_functions_refuse_a_new_role_for_the_service_lag_with_aws_error(self) -> None:
        with Emulator("--service-lag", "1.0", "--lag-jitter", "0") as emu:
            iam, sfn = emu.client("iam"), emu.client("stepfunctions")
            trust = TRUST.replace("lambda.amazonaws.com", "states.amazonaws.com")
            role = iam.create_role(RoleName="S", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
            create = lambda: sfn.create_state_machine(  # noqa: E731
                name="probe", definition=definition, roleArn=role, tags=[{"key": "wfboot:stack", "value": "test"}])
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                create()
            error = cm.exception.response
            self.assertEqual(error["Error"]["Code"], "AccessDeniedException")
            self.assertEqual(error["Error"]["Message"],
                             "Neither the global service principal states.amazonaws.com, nor the regional one is "
                             "authorized to assume the provided role.")
            self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 400)
            self.assertEqual(sfn.list_state_machines()["stateMachines"], [])
            time.sleep(1.1)
            arn = create()["stateMachineArn"]
            self.assertEqual(sfn.list_tags_for_resource(resourceArn=arn)["tags"],
                             [{"key": "wfboot:stack", "value": "test"}])
            sfn.delete_state_machine(stateMachineArn=arn)
            self.assertEqual(sfn.list_state_machines()["stateMachines"], [])

    def test_a_compute_environment_reads_creating_then_invalid_while_batch_cannot_assume_its_service_role(self) -> None:
        # Windows long enough for a loaded machine (the self-tests run several at once): the roles' service lag
        # must outlast creating them and the first environment.
        with Emulator("--service-lag", "6", "--batch-transition", "2", "--lag-jitter", "0") as emu:
            iam, batch = emu.client("iam"), emu.client("batch")
            account = emu.client("sts").get_caller_identity()["Account"]
            service_role, profile, fleet_role = batch_roles(iam)
            lag_ends = time.monotonic() + 6  # no earlier than the last role's window ends
            create = lambda name: batch.create_compute_environment(  # noqa: E731
                **compute_environment(emu, name, service_role, profile, fleet_role))

            def status(name: str) -> list[tuple[str, str, str | None]]:
                return [(e["status"], e["state"], e.get("statusReason")) for e in
                        batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]]

            create("early")  # accepted: Batch finds out afterwards that it cannot assume the role
            self.assertEqual(status("early"), [("CREATING", "DISABLED", None)])
            time.sleep(2.2)
            ((state, _, reason),) = status("early")
            self.assertEqual(state, "INVALID")
            self.assertTrue(reason.startswith(
                "CLIENT_ERROR - User: batch.amazonaws.com is not authorized to perform: sts:AssumeRole on resource: "
                f"arn:aws:iam::{account}:role/BatchService (Service: AWSSecurityTokenService; Status Code: 403; "
                "Error Code: AccessDenied; Request ID: "), reason)
            time.sleep(max(0.0, lag_ends - time.monotonic()) + 0.1)
            self.assertEqual(status("early")[0][0], "INVALID", "Batch does not repair an INVALID one by itself")
            create("late")
            time.sleep(2.2)
            self.assertEqual(status("late"), [("VALID", "DISABLED", "Compute environment is available")])
            # Deleted: DELETING (state DISABLED) for a moment, then gone.
            batch.delete_compute_environment(computeEnvironment="early")
            self.assertEqual(status("early"), [("DELETING", "DISABLED", None)])
            listed = {e["computeEnvironmentName"]: e["status"]
                      for e in batch.describe_compute_environments()["computeEnvironments"]}
            self.assertEqual(listed, {"early": "DELETING", "late": "VALID"}, "listing them all shows it too")
            time.sleep(2.2)
            self.assertEqual(status("early"), [])
            batch.update_compute_environment(computeEnvironment="late", state="DISABLED")
            batch.delete_compute_environment(computeEnvironment="late")
            time.sleep(2.2)
            self.assertEqual(batch.describe_compute_environments()["computeEnvironments"], [])
            marks = [e.get("realism") for e in emu.log_entries() if e["action"].endswith("computeenvironment")]
            self.assertEqual(marks, ["batch_role_not_propagated", None, None, None, None])

    def test_a_compute_environment_whose_service_role_is_deleted_while_it_is_deleting_stays_invalid(self) -> None:
        with Emulator("--batch-transition", "1") as emu:
            iam, batch = emu.client("iam"), emu.client("batch")
            service_role, profile, fleet_role = batch_roles(iam)
            for name in ("kept", "orphaned"):
                batch.create_compute_environment(**compute_environment(emu, name, service_role, profile, fleet_role))
            time.sleep(1.2)
            batch.delete_compute_environment(computeEnvironment="kept")
            time.sleep(1.2)  # its delete ended with the role there: gone
            batch.delete_compute_environment(computeEnvironment="orphaned")
            iam.delete_role(RoleName="BatchService")
            time.sleep(1.2)  # its delete ended without the role: INVALID, for good
            for _ in range(2):
                listed = [(e["computeEnvironmentName"], e["status"]) for e in
                          batch.describe_compute_environments()["computeEnvironments"]]
                self.assertEqual(listed, [("orphaned", "INVALID")])
                time.sleep(1.2)

    def test_windows_are_drawn_from_the_seed_between_half_and_all_of_the_flag(self) -> None:
        sys.path.insert(0, os.path.dirname(EMULATOR))
        import realism

        def factors(seed: int) -> list[float]:
            r = realism.Realism(realism.Settings(iam_lag=2.0, lag_jitter=0.5, seed=seed))
            return [r.factor("123456789012", ("GetRole", (("RoleName", f"R{i}"),))) for i in range(50)]

        self.assertEqual(factors(7), factors(7), "the same seed gives the same windows")
        self.assertNotEqual(factors(7), factors(8))
        self.assertTrue(all(0.5 < f <= 1.0 for f in factors(7)), factors(7))
        self.assertGreater(max(factors(7)) - min(factors(7)), 0.2, "the windows differ between entities")

    def test_settle_ends_every_window_at_once(self) -> None:
        with Emulator("--realism", "--iam-lag", "30", "--service-lag", "30") as emu:
            iam, sfn = emu.client("iam"), emu.client("stepfunctions")
            iam.create_role(RoleName="R", AssumeRolePolicyDocument=TRUST)
            self.assertEqual(code_of(lambda: iam.get_role(RoleName="R")), ("NoSuchEntity", 404))
            role = f"arn:aws:iam::{emu.client('sts').get_caller_identity()['Account']}:role/R"
            definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
            self.assertEqual(code_of(lambda: sfn.create_state_machine(name="m", definition=definition, roleArn=role)),
                             ("AccessDeniedException", 400))
            with urllib.request.urlopen(emu.url + "/__emulator/stats") as r:
                self.assertEqual(json.load(r)["realism"]["service_roles_lagging"], 1)
            req = urllib.request.Request(emu.url + "/__emulator/control", data=b'{"settle": true}', method="POST")
            urllib.request.urlopen(req).close()
            self.assertEqual(iam.get_role(RoleName="R")["Role"]["RoleName"], "R")
            sfn.create_state_machine(name="m", definition=definition, roleArn=role)
            with urllib.request.urlopen(emu.url + "/__emulator/stats") as r:
                stats = json.load(r)
            self.assertEqual(stats["realism"]["answers"], {"stale_read": 1, "service_role_not_propagated": 1})

    def test_assumed_role_sessions_expire_and_role_chaining_is_capped_at_an_hour(self) -> None:
        with Emulator("--session-seconds", "12") as emu:
            out = emu.client("sts").assume_role(RoleArn="arn:aws:iam::111111111111:role/X", RoleSessionName="test",
                                                DurationSeconds=3600)
            c = out["Credentials"]
            left = c["Expiration"].timestamp() - time.time()
            self.assertTrue(0 < left <= 12.1, f"the client is told the capped expiry: {left:.2f} s")
            session = boto3.client("iam", endpoint_url=emu.url, region_name="us-east-1",
                                   aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                                   aws_session_token=c["SessionToken"],
                                   config=Config(retries={"total_max_attempts": 1}))
            session.list_roles()
            chained = boto3.client("sts", endpoint_url=emu.url, region_name="us-east-1",
                                   aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                                   aws_session_token=c["SessionToken"],
                                   config=Config(retries={"total_max_attempts": 1}))
            self.assertEqual(code_of(lambda: chained.assume_role(
                RoleArn="arn:aws:iam::111111111111:role/Y", RoleSessionName="test", DurationSeconds=7200)),
                ("ValidationError", 400))
            # A second past the expiry it was told (in ms): a margin for a loaded machine.
            time.sleep(max(0.0, c["Expiration"].timestamp() - time.time()) + 1.1)
            self.assertEqual(code_of(session.list_roles), ("ExpiredToken", 400))

    def test_a_running_instances_new_metadata_options_read_pending_then_applied(self) -> None:
        with Emulator("--metadata-transition", "1.5", "--lag-jitter", "0") as emu:
            ec2 = emu.client("ec2")
            iid = ec2.run_instances(ImageId=probe_ami(emu), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

            def shown() -> dict:
                return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]

            answered = ec2.modify_instance_metadata_options(InstanceId=iid, HttpTokens="required")
            self.assertEqual(answered["InstanceMetadataOptions"]["State"], "pending")
            self.assertEqual((shown()["State"], shown()["HttpTokens"]), ("pending", "required"))
            time.sleep(1.6)
            self.assertEqual(shown()["State"], "applied")
            marks = [(e["action"], e.get("realism")) for e in emu.log_entries()
                     if e["action"] in ("ModifyInstanceMetadataOptions", "DescribeInstances")]
            self.assertEqual(marks, [("ModifyInstanceMetadataOptions", "metadata_pending"),
                                     ("DescribeInstances", "metadata_pending"), ("DescribeInstances", "metadata_pending"),
                                     ("DescribeInstances", None)])
            # A stopped instance is left as moto answers; settle ends a window at once.
            ec2.stop_instances(InstanceIds=[iid])
            answered = ec2.modify_instance_metadata_options(InstanceId=iid, HttpPutResponseHopLimit=2)
            self.assertEqual(answered["InstanceMetadataOptions"]["State"], "applied")
            ec2.start_instances(InstanceIds=[iid])
            ec2.modify_instance_metadata_options(InstanceId=iid, HttpPutResponseHopLimit=3)
            self.assertEqual(shown()["State"], "pending")
            emu.settle()
            self.assertEqual((shown()["State"], shown()["HttpPutResponseHopLimit"]), ("applied", 3))

    def test_realism_flags_are_checked(self) -> None:
        for args in (["--iam-lag", "-1"], ["--lag-jitter", "1"], ["--session-seconds", "0"], ["--service-lag", "-1"],
                     ["--batch-transition", "-0.5"], ["--metadata-transition", "-1"]):
            proc = subprocess.run([sys.executable, EMULATOR, "--port", "0", *args],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            self.assertEqual(proc.returncode, 2, args)
            self.assertEqual(proc.stdout, b"", args)

def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def context(key: str, *values: str, kind: str = "string") -> dict:
    return {"ContextKeyName": key, "ContextKeyValues": list(values), "ContextKeyType": kind}


class SimulatorTest(unittest.TestCase):
    """iam:SimulatePrincipalPolicy and SimulateCustomPolicy (tools/simulator.py), read back through boto3, whose
    parser follows botocore's IAM model: a field in the wrong place or of the wrong shape does not come back."""

    emu: Emulator
    iam: Any
    account: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.emu = Emulator()
        cls.iam = cls.emu.client("iam")
        cls.account = cls.emu.client("sts").get_caller_identity()["Account"]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.emu.stop()

    def user(self, name: str, *inline: str) -> str:
        arn = self.iam.create_user(UserName=name)["User"]["Arn"]
        for i, document in enumerate(inline):
            self.iam.put_user_policy(UserName=name, PolicyName=f"{name}-inline-{i}", PolicyDocument=document)
        return arn

    def simulate(self, arn: str, actions: list[str], **kw) -> list[dict]:
        out = self.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, **kw)
        self.assertFalse(out["IsTruncated"])
        self.assertNotIn("Marker", out)
        return out["EvaluationResults"]

    def test_one_result_per_action_with_the_wildcard_resource_and_no_resource_specific_results(self) -> None:
        arn = self.user("sim-one-per-action", policy(allow(["iam:GetRole", "iam:ListRoles"])))
        results = self.simulate(arn, ["iam:GetRole", "iam:ListRoles", "iam:CreateRole"])
        self.assertEqual([(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results], [
            ("iam:GetRole", "*", "allowed"),
            ("iam:ListRoles", "*", "allowed"),
            ("iam:CreateRole", "*", "implicitDeny"),
        ])
        for r in results:
            self.assertNotIn("ResourceSpecificResults", r)
            self.assertEqual(r["MissingContextValues"], [])
        self.assertEqual(results[2]["MatchedStatements"], [])

    def test_resource_arns_give_one_result_per_action_and_resource_with_resource_specific_results(self) -> None:
        mine = f"arn:aws:iam::{self.account}:role/sim-mine"
        other = f"arn:aws:iam::{self.account}:role/sim-other"
        arn = self.user("sim-resources", policy(allow("iam:GetRole", mine)))
        results = self.simulate(arn, ["iam:GetRole", "iam:DeleteRole"], ResourceArns=[mine, other])
        self.assertEqual([(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results], [
            ("iam:GetRole", mine, "allowed"),
            ("iam:GetRole", other, "implicitDeny"),
            ("iam:DeleteRole", mine, "implicitDeny"),
            ("iam:DeleteRole", other, "implicitDeny"),
        ])
        for r in results:
            (specific,) = r["ResourceSpecificResults"]
            self.assertEqual(specific["EvalResourceName"], r["EvalResourceName"])
            self.assertEqual(specific["EvalResourceDecision"], r["EvalDecision"])
        self.assertEqual(len(results[0]["ResourceSpecificResults"][0]["MatchedStatements"]), 1)

    def test_matched_statements_name_the_policy_and_the_statement_position(self) -> None:
        document = policy(allow("s3:ListAllMyBuckets"), allow("iam:GetRole"))
        arn = self.user("sim-matched", document)
        (result,) = self.simulate(arn, ["iam:GetRole"])
        self.assertEqual(result["EvalDecision"], "allowed")
        (statement,) = result["MatchedStatements"]
        self.assertEqual(statement["SourcePolicyId"], "sim-matched-inline-0")
        self.assertEqual(statement["SourcePolicyType"], "user")
        # The second statement of the indented document: its `{` and the character after its `}`.
        lines = document.splitlines()
        start, end = statement["StartPosition"], statement["EndPosition"]
        self.assertEqual(lines[start["Line"] - 1][start["Column"] - 1], "{")
        self.assertIn("iam:GetRole", "\n".join(lines[start["Line"] - 1:end["Line"]]))
        self.assertNotIn("s3:ListAllMyBuckets", "\n".join(lines[start["Line"] - 1:end["Line"]]))
        self.assertEqual(lines[end["Line"] - 1][end["Column"] - 2], "}")

    def test_a_conditioned_grant_without_its_context_is_an_implicit_deny_naming_the_missing_key(self) -> None:
        role = f"arn:aws:iam::{self.account}:role/sim-batch"
        arn = self.user("sim-conditioned", policy(allow(
            "iam:PassRole", role, Condition={"StringEquals": {"iam:PassedToService": "batch.amazonaws.com"}})))
        (bare,) = self.simulate(arn, ["iam:PassRole"], ResourceArns=[role])
        self.assertEqual(bare["EvalDecision"], "implicitDeny")
        self.assertEqual(bare["MissingContextValues"], ["iam:PassedToService"])
        self.assertEqual(bare["ResourceSpecificResults"][0]["MissingContextValues"], ["iam:PassedToService"])
        (right,) = self.simulate(arn, ["iam:PassRole"], ResourceArns=[role],
                                 ContextEntries=[context("iam:PassedToService", "batch.amazonaws.com")])
        self.assertEqual(right["EvalDecision"], "allowed")
        self.assertEqual(right["MissingContextValues"], [])
        (wrong,) = self.simulate(arn, ["iam:PassRole"], ResourceArns=[role],
                                 ContextEntries=[context("iam:PassedToService", "lambda.amazonaws.com")])
        self.assertEqual(wrong["EvalDecision"], "implicitDeny")
        self.assertEqual(wrong["MissingContextValues"], [])
        # A list-typed key (aws:TagKeys) with ForAllValues.
        tags = self.user("sim-tag-keys", policy(allow(
            "iam:CreateRole", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["wfboot:stack"]}})))
        (tagged,) = self.simulate(tags, ["iam:CreateRole"],
                                  ContextEntries=[context("aws:TagKeys", "wfboot:stack", kind="stringList")])
        self.assertEqual(tagged["EvalDecision"], "allowed")
        (extra,) = self.simulate(tags, ["iam:CreateRole"], ContextEntries=[
            context("aws:TagKeys", "wfboot:stack", "owner", kind="stringList")])
        self.assertEqual(extra["EvalDecision"], "implicitDeny")
        # A resource given with a wildcard (a service-linked role's name is AWS's to choose) is compared as given:
        # the grant matches it, and its missing key is reported.
        mfa = self.user("sim-mfa", policy(allow("*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})))
        pattern = f"arn:aws:iam::{self.account}:role/aws-service-role/spot.amazonaws.com/*"
        (slr,) = self.simulate(mfa, ["iam:CreateServiceLinkedRole"], ResourceArns=[pattern],
                               ContextEntries=[context("iam:AWSServiceName", "spot.amazonaws.com")])
        self.assertEqual((slr["EvalDecision"], slr["MissingContextValues"]),
                         ("implicitDeny", ["aws:MultiFactorAuthPresent"]))

    def test_an_explicit_deny_wins_and_its_deny_statement_is_the_matched_one(self) -> None:
        arn = self.user("sim-deny", policy(allow("iam:*")), policy(deny("iam:DeleteRole")))
        results = self.simulate(arn, ["iam:DeleteRole", "iam:GetRole"])
        self.assertEqual([r["EvalDecision"] for r in results], ["explicitDeny", "allowed"])
        (statement,) = results[0]["MatchedStatements"]
        self.assertEqual(statement["SourcePolicyId"], "sim-deny-inline-1")
        self.assertEqual(results[1]["MatchedStatements"][0]["SourcePolicyId"], "sim-deny-inline-0")

    def test_group_inline_and_attached_managed_policies_count_for_a_user_and_for_the_group(self) -> None:
        arn = self.user("sim-member", policy(allow("iam:GetUser")))
        self.iam.create_group(GroupName="sim-group")
        self.iam.add_user_to_group(GroupName="sim-group", UserName="sim-member")
        self.iam.put_group_policy(GroupName="sim-group", PolicyName="group-inline",
                                  PolicyDocument=policy(allow("iam:GetGroup")))
        managed = self.iam.create_policy(PolicyName="sim-group-managed",
                                         PolicyDocument=policy(allow("iam:ListRoles")))["Policy"]["Arn"]
        self.iam.attach_group_policy(GroupName="sim-group", PolicyArn=managed)
        self.iam.attach_user_policy(UserName="sim-member",
                                    PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        actions = ["iam:GetUser", "iam:GetGroup", "iam:ListRoles", "s3:ListBucket", "iam:CreateRole"]
        results = self.simulate(arn, actions)
        self.assertEqual([r["EvalDecision"] for r in results], ["allowed"] * 4 + ["implicitDeny"])
        self.assertEqual([[(m["SourcePolicyId"], m["SourcePolicyType"]) for m in r["MatchedStatements"]]
                          for r in results[:4]], [
            [("sim-member-inline-0", "user")],
            [("group-inline", "group")],
            [("sim-group-managed", "user-managed")],
            [("AmazonS3ReadOnlyAccess", "aws-managed")],
        ])
        group = self.iam.get_group(GroupName="sim-group")["Group"]["Arn"]
        self.assertEqual([r["EvalDecision"] for r in self.simulate(group, actions)],
                         ["implicitDeny", "allowed", "allowed", "implicitDeny", "implicitDeny"])

    def test_a_role_is_simulated_with_its_policies_and_its_session_may_simulate_with_enforcement_on(self) -> None:
        # Its own emulator: enforcement, once on, stays on.
        with Emulator(log=False) as emu:
            iam, sts = emu.client("iam"), emu.client("sts")
            account = sts.get_caller_identity()["Account"]
            trust = json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})
            role = iam.create_role(RoleName="sim-operator", Path="/ops/", AssumeRolePolicyDocument=trust)["Role"]
            iam.put_role_policy(RoleName="sim-operator", PolicyName="may-simulate", PolicyDocument=policy(
                allow(["iam:SimulatePrincipalPolicy", "iam:GetRole"], role["Arn"])))
            iam.create_role(RoleName="sim-idle", AssumeRolePolicyDocument=trust)
            results = iam.simulate_principal_policy(PolicySourceArn=role["Arn"],
                                                    ActionNames=["iam:GetRole", "iam:DeleteRole"],
                                                    ResourceArns=[role["Arn"]])["EvaluationResults"]
            self.assertEqual([r["EvalDecision"] for r in results], ["allowed", "implicitDeny"])
            self.assertEqual(results[0]["MatchedStatements"][0]["SourcePolicyType"], "role")
            creds = [sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/ops/sim-operator",
                                     RoleSessionName="sim")["Credentials"] for _ in range(2)]
            with urllib.request.urlopen(urllib.request.Request(
                    emu.url + "/moto-api/reset-auth", data=b"0", method="POST",
                    headers={"Content-Type": "text/plain"})) as r:
                self.assertEqual(r.status, 200)

            def session_iam(c: dict):
                return boto3.client("iam", endpoint_url=emu.url, region_name="us-east-1",
                                    aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                                    aws_session_token=c["SessionToken"],
                                    config=Config(retries={"total_max_attempts": 1}))

            session = session_iam(creds[0])
            (own,) = session.simulate_principal_policy(PolicySourceArn=role["Arn"],
                                                       ActionNames=["iam:GetRole"])["EvaluationResults"]
            self.assertEqual(own["EvalDecision"], "allowed")
            # The session's role may simulate only itself: another principal is AccessDenied.
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                session.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{account}:role/sim-idle",
                                                  ActionNames=["iam:GetRole"])
            self.assertEqual(cm.exception.response["Error"]["Code"], "AccessDenied")
            self.assertIn("assumed-role/sim-operator/sim", cm.exception.response["Error"]["Message"])
            # Unsigned by a known key: rejected as moto rejects every request then.
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                emu.client("iam").simulate_principal_policy(PolicySourceArn=role["Arn"], ActionNames=["iam:GetRole"])
            self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidClientTokenId")

    def test_max_items_pages_the_results_with_a_marker_that_belongs_to_its_request(self) -> None:
        arn = self.user("sim-pages", policy(allow("iam:Get*")))
        actions = ["iam:GetRole", "iam:GetUser", "iam:GetGroup", "iam:CreateRole", "iam:GetPolicy"]
        first = self.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=2)
        self.assertTrue(first["IsTruncated"])
        self.assertEqual([r["EvalActionName"] for r in first["EvaluationResults"]], actions[:2])
        second = self.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=2,
                                                    Marker=first["Marker"])
        self.assertTrue(second["IsTruncated"])
        self.assertEqual([r["EvalActionName"] for r in second["EvaluationResults"]], actions[2:4])
        third = self.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=2,
                                                   Marker=second["Marker"])
        self.assertFalse(third["IsTruncated"])
        self.assertNotIn("Marker", third)
        self.assertEqual([r["EvalActionName"] for r in third["EvaluationResults"]], actions[4:])
        # botocore's paginator (IsTruncated/Marker, as its IAM model says) gets all of them.
        pages = self.iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=arn, ActionNames=actions, PaginationConfig={"PageSize": 2})
        decisions = [r["EvalDecision"] for page in pages for r in page["EvaluationResults"]]
        self.assertEqual(decisions, ["allowed", "allowed", "allowed", "implicitDeny", "allowed"])
        for bad in ({"Marker": first["Marker"], "ActionNames": actions[:3]}, {"MaxItems": 1001}):
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                self.iam.simulate_principal_policy(**{"PolicySourceArn": arn, "ActionNames": actions, **bad})
            self.assertIn(cm.exception.response["Error"]["Code"], ("InvalidInput", "ValidationError"))

    def test_an_unknown_principal_is_no_such_entity_and_a_non_principal_arn_invalid_input(self) -> None:
        for arn in (f"arn:aws:iam::{self.account}:user/nobody", f"arn:aws:iam::{self.account}:role/nothing"):
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                self.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["iam:GetRole"])
            self.assertEqual(cm.exception.response["Error"]["Code"], "NoSuchEntity", arn)
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            self.iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{self.account}:policy/p",
                                               ActionNames=["iam:GetRole"])
        self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidInput")

    def test_simulate_custom_policy_evaluates_the_given_documents_with_their_context(self) -> None:
        role = f"arn:aws:iam::{self.account}:role/sim-custom"
        documents = [policy(allow("iam:PassRole", role,
                                  Condition={"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}})),
                     policy(deny("iam:DeleteRole"))]
        out = self.iam.simulate_custom_policy(PolicyInputList=documents, ActionNames=["iam:PassRole", "iam:DeleteRole"],
                                              ResourceArns=[role],
                                              ContextEntries=[context("iam:PassedToService", "states.amazonaws.com")])
        self.assertFalse(out["IsTruncated"])
        results = out["EvaluationResults"]
        self.assertEqual([r["EvalDecision"] for r in results], ["allowed", "explicitDeny"])
        self.assertEqual([m["SourcePolicyId"] for r in results for m in r["MatchedStatements"]],
                         ["PolicyInputList.1", "PolicyInputList.2"])
        self.assertEqual({m["SourcePolicyType"] for r in results for m in r["MatchedStatements"]}, {"none"})
        (bare,) = self.iam.simulate_custom_policy(PolicyInputList=documents[:1], ActionNames=["iam:PassRole"],
                                                  ResourceArns=[role])["EvaluationResults"]
        self.assertEqual((bare["EvalDecision"], bare["MissingContextValues"]), ("implicitDeny", ["iam:PassedToService"]))

    def test_the_simulations_are_logged_as_reads_and_no_simulator_leaves_them_to_moto(self) -> None:
        entries = [e for e in self.emu.log_entries() if e["action"] == "SimulatePrincipalPolicy"]
        self.assertTrue(entries)
        self.assertTrue(all(e["write"] is False for e in entries))
        with Emulator("--no-simulator") as emu:
            iam = emu.client("iam")
            arn = iam.create_user(UserName="u")["User"]["Arn"]
            # moto answers with an HTML page (it does not implement the action), which botocore cannot parse.
            with self.assertRaises((botocore.exceptions.ClientError, ResponseParserError)):
                iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["iam:GetRole"])
            self.assertEqual([e["status"] for e in emu.log_entries() if e["action"] == "SimulatePrincipalPolicy"],
                             [500])


TRUST_TOOL = os.path.join(os.path.dirname(EMULATOR), "iam-simulate", "trust.mjs")
ACCOUNT = "123456789012"


def trust(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def service_statement(*services: str, effect: str = "Allow", **extra) -> dict:
    principal = services[0] if len(services) == 1 else list(services)
    return {"Effect": effect, "Principal": {"Service": principal}, "Action": "sts:AssumeRole", **extra}


class TrustToolTest(unittest.TestCase):
    """tools/iam-simulate/trust.mjs: may a service assume a role, by @cloud-copilot/iam-simulate (the reference the
    tests of `wfboot verify` compare wfboot's offline trust verdicts with)."""

    proc: subprocess.Popen
    next_id = 0

    @classmethod
    def setUpClass(cls) -> None:
        cls.proc = subprocess.Popen(["node", TRUST_TOOL], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    cwd=os.path.dirname(TRUST_TOOL))
        assert cls.proc.stdout is not None
        cls.ready = json.loads(cls.proc.stdout.readline())

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.proc.stdin is not None and cls.proc.stdout is not None
        cls.proc.stdin.close()
        cls.proc.wait(timeout=10)
        cls.proc.stdout.close()

    def ask(self, line: bytes) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def evaluate(self, *cases: dict) -> list[dict]:
        TrustToolTest.next_id += 1
        answer = self.ask(json.dumps({"id": self.next_id, "cases": list(cases)}).encode())
        self.assertEqual(answer["id"], self.next_id)
        self.assertEqual(len(answer["results"]), len(cases))
        return answer["results"]

    def one(self, document, service: str, context: dict | None = None, role: str = "R") -> dict:
        (result,) = self.evaluate({"trust": document, "service": service,
                                   "role": f"arn:aws:iam::{ACCOUNT}:role/{role}", "context": context or {}})
        return result

    def test_it_says_it_is_ready_and_a_plain_service_trust_admits_that_service_only(self) -> None:
        self.assertEqual(self.ready, {"ready": True, "tool": "trust", "version": "0.1.173"})
        document = trust(service_statement("lambda.amazonaws.com"))
        admitted = self.one(document, "lambda.amazonaws.com")
        self.assertEqual(admitted, {"decision": "allowed", "allowed": True, "matched": [0], "missing": [],
                                    "statements": [{"index": 0, "effect": "Allow", "principal": True, "action": True,
                                                    "conditions": True, "missing": []}],
                                    "validated": True, "error": None})
        other = self.one(document, "ec2.amazonaws.com")
        self.assertEqual((other["decision"], other["matched"]), ("implicitDeny", []))
        self.assertEqual(other["statements"][0]["principal"], False, "it says the principal is why")
        # The document as IAM stores it (JSON text) reads the same; a list of services admits each.
        self.assertTrue(self.one(json.dumps(document), "lambda.amazonaws.com")["allowed"])
        both = trust(service_statement("ec2.amazonaws.com", "lambda.amazonaws.com"))
        self.assertEqual([self.one(both, s)["allowed"] for s in ("ec2.amazonaws.com", "lambda.amazonaws.com",
                                                                  "states.amazonaws.com")], [True, True, False])
        # A path in the role's ARN changes nothing.
        self.assertTrue(self.one(document, "lambda.amazonaws.com", role="service-role/R")["allowed"])

    def test_a_hardened_trust_admits_the_service_only_for_its_account_and_source_arn(self) -> None:
        machines = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:*"
        hardened = trust(service_statement("states.amazonaws.com", Condition={
            "StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": machines}}))
        right = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:M"}
        self.assertTrue(self.one(hardened, "states.amazonaws.com", right)["allowed"])
        wrong_arn = self.one(hardened, "states.amazonaws.com",
                             {**right, "aws:SourceArn": f"arn:aws:states:us-east-1:{ACCOUNT}:activity:A"})
        self.assertEqual((wrong_arn["decision"], wrong_arn["missing"]), ("implicitDeny", []))
        self.assertEqual([(s["principal"], s["conditions"]) for s in wrong_arn["statements"]], [(True, False)])
        other_account = self.one(hardened, "states.amazonaws.com", {**right, "aws:SourceAccount": "111111111111"})
        self.assertFalse(other_account["allowed"])
        # Without the context a service sends, the condition does not hold, and the keys it lacks are named.
        bare = self.one(hardened, "states.amazonaws.com")
        self.assertEqual((bare["decision"], bare["missing"]), ("implicitDeny", ["aws:SourceAccount", "aws:SourceArn"]))

    def test_an_explicit_deny_in_the_trust_wins_and_is_the_matched_statement(self) -> None:
        document = trust(service_statement("batch.amazonaws.com"),
                         {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
                          "Condition": {"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}})
        mine = self.one(document, "batch.amazonaws.com", {"aws:SourceAccount": ACCOUNT})
        self.assertEqual((mine["decision"], mine["matched"]), ("allowed", [0]))
        theirs = self.one(document, "batch.amazonaws.com", {"aws:SourceAccount": "111111111111"})
        self.assertEqual((theirs["decision"], theirs["matched"]), ("explicitDeny", [1]))
        # Another action than the one asked for is no grant.
        tag_only = trust({**service_statement("batch.amazonaws.com"), "Action": "sts:TagSession"})
        result = self.one(tag_only, "batch.amazonaws.com")
        self.assertEqual((result["decision"], result["statements"][0]["action"]), ("implicitDeny", False))

    def test_bad_input_is_answered_not_validated_with_the_reason_and_the_batch_goes_on(self) -> None:
        results = self.evaluate(
            {"trust": trust({**service_statement("lambda.amazonaws.com"), "Effect": "Maybe"}),
             "service": "lambda.amazonaws.com", "role": f"arn:aws:iam::{ACCOUNT}:role/R"},
            {"trust": trust(service_statement("lambda.amazonaws.com")), "service": "lambda.amazonaws.com",
             "role": "R"},
            {"trust": trust(service_statement("lambda.amazonaws.com")), "role": f"arn:aws:iam::{ACCOUNT}:role/R"},
            {"trust": trust(service_statement("lambda.amazonaws.com")), "service": "lambda.amazonaws.com",
             "role": f"arn:aws:iam::{ACCOUNT}:role/R"})
        self.assertEqual([(r["allowed"], r["validated"]) for r in results],
                         [(False, False), (False, False), (False, False), (True, True)])
        self.assertIn("Statement[0].Effect", results[0]["error"])
        self.assertIn("not a role ARN", results[1]["error"])
        self.assertIn("`service` and `role`", results[2]["error"])
        self.assertEqual(self.ask(b"not json")["id"], None)
        self.assertTrue(self.one(trust(service_statement("lambda.amazonaws.com")), "lambda.amazonaws.com")["allowed"],
                        "it still answers after a line that is not JSON")


# --------------------------------------------------------------------------------------
# CloudFormation StackSets (tools/stacksets.py)
# --------------------------------------------------------------------------------------

STACKSETS_PRINCIPAL = "member.org.stacksets.cloudformation.amazonaws.com"
BATCH_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
# The resource kinds of `wfboot export --format cloudformation` (a role with a managed policy and tags, a managed
# policy attached to it, an instance profile, service-linked roles under a parameter's condition).
STACKSET_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"CreateServiceLinkedRoles": {"Type": "String", "AllowedValues": ["true", "false"],
                                                "Default": "true"}},
    "Conditions": {"ShouldCreateServiceLinkedRoles": {"Fn::Equals": [{"Ref": "CreateServiceLinkedRoles"}, "true"]}},
    "Resources": {
        "RoleAWSBatchServiceRole": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "AWSBatchServiceRole", "Path": "/", "AssumeRolePolicyDocument": json.loads(BATCH_TRUST),
            "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSBatchServiceRole"}],
            "Tags": [{"Key": "wfboot:stack", "Value": "slim-workflow"}]}},
        "PolicyPassRoles": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
            "ManagedPolicyName": "SLIMWorkflowPassRoles", "Path": "/", "Roles": [{"Ref": "RoleAWSBatchServiceRole"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "iam:PassRole",
                "Resource": {"Fn::GetAtt": ["RoleAWSBatchServiceRole", "Arn"]}}]}}},
        "InstanceProfileECS": {"Type": "AWS::IAM::InstanceProfile", "Properties": {
            "InstanceProfileName": "SLIM-Extras_ECS_for_EC2", "Path": "/", "Roles": [{"Ref": "RoleAWSBatchServiceRole"}]}},
        "ServiceLinkedRoleBatch": {"Type": "AWS::IAM::ServiceLinkedRole", "Condition": "ShouldCreateServiceLinkedRoles",
                                   "Properties": {"AWSServiceName": "batch.amazonaws.com"}},
    },
}
TEMPLATE_BODY = json.dumps(STACKSET_TEMPLATE)
NAMED_IAM = ["CAPABILITY_NAMED_IAM"]
NO_SLR = [{"ParameterKey": "CreateServiceLinkedRoles", "ParameterValue": "false"}]


def template_named(suffix: str) -> str:
    """The template with other names (StackSets side by side in one account), without service-linked roles."""
    t = json.loads(TEMPLATE_BODY)
    r = t["Resources"]
    r["RoleAWSBatchServiceRole"]["Properties"]["RoleName"] += suffix
    r["PolicyPassRoles"]["Properties"]["ManagedPolicyName"] += suffix
    r["InstanceProfileECS"]["Properties"]["InstanceProfileName"] += suffix
    del r["ServiceLinkedRoleBatch"]
    return json.dumps(t)


class StackSets:
    """CloudFormation StackSets as CloudFormation runs them. One emulator per class; each test builds its own
    organisation, whose management account is a new account of its own (signed in with a session there)."""

    emu: Emulator

    @classmethod
    def setUpClass(cls) -> None:
        cls.emu = Emulator("--no-simulator")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.emu.stop()

    def setUp(self) -> None:
        self.control({"stackset_account_seconds": 0.05})
        self.mgmt = "".join(random.choice("0123456789") for _ in range(12))
        creds = self.emu.client("sts").assume_role(RoleArn=f"arn:aws:iam::{self.mgmt}:role/Administrator",
                                                   RoleSessionName="management")["Credentials"]
        self.key = creds["AccessKeyId"]
        self.session = dict(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"])
        self.cf = self.client("cloudformation")
        self.org = self.client("organizations")

    def client(self, service: str, session: dict[str, str] | None = None):
        return boto3.client(service, endpoint_url=self.emu.url, region_name="us-east-1", **(session or self.session),
                            config=Config(retries={"total_max_attempts": 1}, read_timeout=30))

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.emu.url + "/__emulator/control", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.emu.url + "/__emulator/stats", timeout=10) as r:
            return json.load(r)

    # ---- an organisation ----

    def organisation(self, layout: dict[str, int], trusted: bool = True) -> tuple[str, dict[str, str], dict[str, list[str]]]:
        """Creates the organisation, OUs by path ("workloads", "workloads/child") with that many new accounts each;
        answers (root id, OU id by path, account ids by path)."""
        self.org.create_organization(FeatureSet="ALL")
        root = self.org.list_roots()["Roots"][0]["Id"]
        ous: dict[str, str] = {}
        accounts: dict[str, list[str]] = {}
        for path, count in layout.items():
            parent = ous[path.rsplit("/", 1)[0]] if "/" in path else root
            ous[path] = self.org.create_organizational_unit(ParentId=parent, Name=path.rsplit("/", 1)[-1])[
                "OrganizationalUnit"]["Id"]
            accounts[path] = []
            for i in range(count):
                name = f"{path.replace('/', '-')}-{i}"
                aid = self.org.create_account(Email=f"{name}@example.com", AccountName=name)[
                    "CreateAccountStatus"]["AccountId"]
                self.org.move_account(AccountId=aid, SourceParentId=root, DestinationParentId=ous[path])
                accounts[path].append(aid)
        if trusted:
            self.cf.activate_organizations_access()
        return root, ous, accounts

    def member(self, account: str, service: str = "iam"):
        """A client signed in to `account` through OrganizationAccountAccessRole (kept for the test: boto3's clients
        are slow to make)."""
        cache = self.__dict__.setdefault("members", {})
        if (account, service) not in cache:
            cache[(account, service)] = self.new_member(account, service)
        return cache[(account, service)]

    def new_member(self, account: str, service: str):
        creds = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="emulator-test")[
            "Credentials"]
        return self.client(service, dict(aws_access_key_id=creds["AccessKeyId"],
                                         aws_secret_access_key=creds["SecretAccessKey"],
                                         aws_session_token=creds["SessionToken"]))

    def roles(self, account: str) -> set[str]:
        return {r["RoleName"] for r in self.member(account).list_roles()["Roles"]} - {"OrganizationAccountAccessRole"}

    def stack_set(self, name: str = "wfboot-slim", **kw: Any) -> None:
        args = dict(StackSetName=name, TemplateBody=TEMPLATE_BODY, PermissionModel="SERVICE_MANAGED",
                    Capabilities=NAMED_IAM, AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False})
        args.update(kw)
        self.cf.create_stack_set(**args)

    def wait(self, operation_id: str, name: str = "wfboot-slim", timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            op = self.cf.describe_stack_set_operation(StackSetName=name, OperationId=operation_id)["StackSetOperation"]
            if op["Status"] not in ("RUNNING", "QUEUED", "STOPPING"):
                return op
            self.assertLess(time.monotonic(), deadline, f"operation {operation_id} still {op['Status']}")
            time.sleep(0.02)

    def results(self, operation_id: str, name: str = "wfboot-slim") -> dict[str, dict[str, Any]]:
        return {r["Account"]: r for r in self.cf.list_stack_set_operation_results(
            StackSetName=name, OperationId=operation_id)["Summaries"]}

    def instances(self, name: str = "wfboot-slim", **kw: Any) -> dict[str, dict[str, Any]]:
        return {i["Account"]: i for i in self.cf.list_stack_instances(StackSetName=name, **kw)["Summaries"]}

    def deploy(self, ou_ids: list[str], name: str = "wfboot-slim", **kw: Any) -> dict[str, Any]:
        op_id = self.cf.create_stack_instances(StackSetName=name, Regions=["us-east-1"],
                                               DeploymentTargets={"OrganizationalUnitIds": ou_ids}, **kw)["OperationId"]
        return self.wait(op_id, name)


class StackSetOperationsTest(StackSets, unittest.TestCase):
    """Operations: asynchronous, their preferences, OperationId, managed execution, the emulator's own work."""

    def test_operations_run_in_the_background_account_by_account_honouring_concurrency(self) -> None:
        self.assertEqual(self.stats()["stacksets"]["account_seconds"], 0.05)
        _root, ous, accounts = self.organisation({"workloads": 4})
        # The first wave lasts until settled: it is looked at while it runs, however busy the machine.
        self.control({"stackset_account_seconds": 60})
        self.stack_set()
        # CreateStackSet is synchronous: the StackSet reads at once.
        self.assertEqual(self.cf.describe_stack_set(StackSetName="wfboot-slim")["StackSet"]["Status"], "ACTIVE")
        started = time.monotonic()
        op_id = self.cf.create_stack_instances(
            StackSetName="wfboot-slim", Regions=["us-east-1"], DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]},
            OperationPreferences={"MaxConcurrentCount": 2, "FailureToleranceCount": 1})["OperationId"]
        answered = time.monotonic() - started
        # Two accounts at a time (MaxConcurrentCount 2, tolerance 1: STRICT allows min(2, 1 + 1)): two waves.
        first_wave = sorted(r["Status"] for r in self.results(op_id).values())
        op = self.cf.describe_stack_set_operation(StackSetName="wfboot-slim", OperationId=op_id)["StackSetOperation"]
        self.assertEqual(first_wave, ["PENDING", "PENDING", "RUNNING", "RUNNING"])
        self.assertEqual(op["Status"], "RUNNING")
        self.assertEqual(op["StatusDetails"]["FailedStackInstancesCount"], 0)
        self.assertLess(answered, 60, "answered while its first wave runs, not after the work")
        self.control({"stackset_account_seconds": 0.05})
        self.control({"stacksets_settle": True})
        op = self.wait(op_id)
        self.assertEqual(op["Status"], "SUCCEEDED")
        self.assertIn("EndTimestamp", op)
        self.assertEqual({a: r["Status"] for a, r in self.results(op_id).items()},
                         {a: "SUCCEEDED" for a in accounts["workloads"]})
        self.assertEqual({r["OrganizationalUnitId"] for r in self.results(op_id).values()}, {ous["workloads"]})
        listed = self.cf.list_stack_set_operations(StackSetName="wfboot-slim")["Summaries"]
        self.assertEqual([(o["OperationId"], o["Action"], o["Status"]) for o in listed], [(op_id, "CREATE", "SUCCEEDED")])
        for account in accounts["workloads"]:
            self.assertEqual(self.roles(account), {"AWSBatchServiceRole", "AWSServiceRoleForbatch"})
        # Each wave takes its time: two waves of 0.3 s take at least 0.6 s (a busy machine only makes it longer).
        self.control({"stackset_account_seconds": 0.3})
        self.stack_set("wfboot-timed", TemplateBody=template_named("-timed"))
        started = time.monotonic()
        timed = self.deploy([ous["workloads"]], name="wfboot-timed",
                            OperationPreferences={"MaxConcurrentCount": 2, "FailureToleranceCount": 1})
        self.assertGreaterEqual(time.monotonic() - started, 0.6)
        self.assertEqual(timed["Status"], "SUCCEEDED")
        # StopStackSetOperation: the accounts under way finish, the others are cancelled. The first account runs
        # until settled, so the stop and the read after it come while it does.
        self.control({"stackset_account_seconds": 60})
        self.stack_set("wfboot-stopped", TemplateBody=template_named("-stopped"))
        op_id = self.cf.create_stack_instances(StackSetName="wfboot-stopped", Regions=["us-east-1"],
                                               DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]})["OperationId"]
        self.cf.stop_stack_set_operation(StackSetName="wfboot-stopped", OperationId=op_id)
        self.assertEqual(self.cf.describe_stack_set_operation(StackSetName="wfboot-stopped", OperationId=op_id)[
            "StackSetOperation"]["Status"], "STOPPING")
        self.control({"stackset_account_seconds": 0.05})
        self.control({"stacksets_settle": True})
        self.assertEqual(self.wait(op_id, "wfboot-stopped")["Status"], "STOPPED")
        self.assertEqual(sorted(r["Status"] for r in self.results(op_id, "wfboot-stopped").values()),
                         ["CANCELLED"] * 3 + ["SUCCEEDED"])

    def test_a_failure_beyond_the_tolerance_fails_the_operation_and_cancels_the_accounts_not_started(self) -> None:
        _root, ous, accounts = self.organisation({"workloads": 4})
        first, *rest = accounts["workloads"]
        self.member(first).create_role(RoleName="AWSBatchServiceRole", AssumeRolePolicyDocument=BATCH_TRUST)
        self.stack_set()
        # STRICT_FAILURE_TOLERANCE (the default), tolerance 0, one at a time: the first account fails, the rest is
        # never started.
        op = self.deploy([ous["workloads"]], OperationPreferences={"MaxConcurrentCount": 1})
        self.assertEqual(op["Status"], "FAILED")
        self.assertEqual(op["StatusDetails"]["FailedStackInstancesCount"], 1)
        results = self.results(op["OperationId"])
        self.assertEqual(results[first]["Status"], "FAILED")
        self.assertEqual({results[a]["Status"] for a in rest}, {"CANCELLED"})
        instances = self.instances()
        self.assertEqual({instances[a]["StackInstanceStatus"]["DetailedStatus"] for a in rest}, {"CANCELLED"})
        self.assertEqual({instances[a]["Status"] for a in accounts["workloads"]}, {"OUTDATED"})
        for account in rest:
            self.assertEqual(self.roles(account), set())
        # SOFT_FAILURE_TOLERANCE with tolerance 1 runs every account at the asked concurrency and succeeds.
        self.stack_set("wfboot-soft")
        op = self.deploy([ous["workloads"]], name="wfboot-soft", OperationPreferences={
            "MaxConcurrentPercentage": 100, "FailureToleranceCount": 1, "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE"})
        self.assertEqual(op["Status"], "SUCCEEDED")
        self.assertEqual(op["StatusDetails"]["FailedStackInstancesCount"], 1)
        self.assertEqual(self.results(op["OperationId"], "wfboot-soft")[first]["Status"], "FAILED")
        # Both in one request is refused.
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.cf.create_stack_instances(StackSetName="wfboot-soft", Regions=["us-east-1"],
                                           DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]},
                                           OperationPreferences={"MaxConcurrentCount": 1, "MaxConcurrentPercentage": 10})
        self.assertEqual(e.exception.response["Error"]["Code"], "ValidationError")

    def test_an_operation_id_is_used_once_and_a_write_meets_the_running_operation_unless_managed_execution_queues_it(
            self) -> None:
        _root, ous, _accounts = self.organisation({"workloads": 2, "legacy": 1})
        # Each operation runs until settled: the writes below meet it, however busy the machine.
        self.control({"stackset_account_seconds": 60})
        self.stack_set()
        first = self.cf.create_stack_instances(StackSetName="wfboot-slim", Regions=["us-east-1"], OperationId="bootstrap-1",
                                               DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]})
        self.assertEqual(first["OperationId"], "bootstrap-1")
        for op_id, code, status in (("bootstrap-1", "OperationIdAlreadyExistsException", 409),
                                    ("bootstrap-2", "OperationInProgressException", 409)):
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.cf.create_stack_instances(StackSetName="wfboot-slim", Regions=["us-east-1"], OperationId=op_id,
                                               DeploymentTargets={"OrganizationalUnitIds": [ous["legacy"]]})
            self.assertEqual(e.exception.response["Error"]["Code"], code)
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], status)
        self.assertRegex(e.exception.response["Error"]["Message"],
                         rf"^Another Operation on StackSet arn:aws:cloudformation:us-east-1:{self.mgmt}:stackset/"
                         r"wfboot-slim:[-0-9a-f]+ is in progress$")
        self.assertEqual(len(self.cf.list_stack_set_operations(StackSetName="wfboot-slim")["Summaries"]), 1)
        self.control({"stacksets_settle": True})
        self.wait("bootstrap-1")
        # Managed execution: the second write is queued, then runs after the first, in request order.
        self.stack_set("wfboot-managed", ManagedExecution={"Active": True}, TemplateBody=template_named("-managed"))
        a = self.cf.create_stack_instances(StackSetName="wfboot-managed", Regions=["us-east-1"],
                                           DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]})["OperationId"]
        b = self.cf.create_stack_instances(StackSetName="wfboot-managed", Regions=["us-east-1"],
                                           DeploymentTargets={"OrganizationalUnitIds": [ous["legacy"]]})["OperationId"]
        self.assertEqual(self.cf.describe_stack_set_operation(StackSetName="wfboot-managed", OperationId=b)[
            "StackSetOperation"]["Status"], "QUEUED")
        with self.assertRaises(botocore.exceptions.ClientError) as e:  # its execution mode cannot change meanwhile
            self.cf.update_stack_set(StackSetName="wfboot-managed", UsePreviousTemplate=True, Capabilities=NAMED_IAM,
                                     ManagedExecution={"Active": False})
        self.assertEqual(e.exception.response["Error"]["Code"], "OperationInProgressException")
        self.control({"stackset_account_seconds": 0.05})
        self.control({"stacksets_settle": True})
        op_b = self.wait(b, "wfboot-managed")
        op_a = self.cf.describe_stack_set_operation(StackSetName="wfboot-managed", OperationId=a)["StackSetOperation"]
        self.assertEqual((op_a["Status"], op_b["Status"]), ("SUCCEEDED", "SUCCEEDED"))
        self.assertLessEqual(op_a["EndTimestamp"], op_b["EndTimestamp"])
        self.assertEqual(len(self.instances("wfboot-managed")), 3)

    def test_the_deployment_work_is_no_request_the_stats_show_it_and_settle_ends_every_operation_at_once(self) -> None:
        _root, ous, accounts = self.organisation({"workloads": 3})
        self.stack_set()
        created_before = self.stats()["stacksets"]["work"].get("accounts_created", 0)
        self.control({"stackset_account_seconds": 60})
        mark = len(self.emu.log_entries())
        op_id = self.cf.create_stack_instances(StackSetName="wfboot-slim", Regions=["us-east-1"],
                                               DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]})["OperationId"]
        stats = self.stats()["stacksets"]
        (mine,) = [x for x in stats["stacksets"] if x["owner"] == self.mgmt]
        self.assertEqual(mine["operations"], [{"id": op_id, "action": "CREATE", "status": "RUNNING", "auto": False}])
        self.assertGreaterEqual(stats["running"], 1)
        started = time.monotonic()
        self.assertGreaterEqual(self.control({"stacksets_settle": True})["stacksets_settled"], 3)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(self.wait(op_id)["Status"], "SUCCEEDED")
        for account in accounts["workloads"]:
            self.assertEqual(self.roles(account), {"AWSBatchServiceRole", "AWSServiceRoleForbatch"})
        # The log holds the client's calls only: CloudFormation's, and the role reads above; not one IAM write.
        entries = self.emu.log_entries()[mark:]
        self.assertEqual({e["access_key"] for e in entries if e["service"] == "cloudformation"}, {self.key})
        self.assertEqual([e["action"] for e in entries if e["write"]], ["CreateStackInstances", "AssumeRole",
                                                                         "AssumeRole", "AssumeRole"])
        stats = self.stats()
        self.assertEqual(stats["stacksets"]["work"]["accounts_created"] - created_before, 3)
        self.assertNotIn("CreateRole", {e["action"] for e in entries})
        (mine,) = [x for x in stats["stacksets"]["stacksets"] if x["owner"] == self.mgmt]
        self.assertEqual({(i["status"], i["detailed"]) for i in mine["instances"]}, {("CURRENT", "SUCCEEDED")})


class StackSetDeploymentTest(StackSets, unittest.TestCase):
    """What each account gets: resources CloudFormation does not own, service-linked roles, deployment targets."""

    def test_a_hand_made_role_fails_that_accounts_instance_with_cloudformations_reason_and_is_left_as_it_was(self) -> None:
        _root, ous, accounts = self.organisation({"workloads": 2, "legacy": 1})
        (legacy,) = accounts["legacy"]
        iam = self.member(legacy)
        hand_made = iam.create_role(RoleName="AWSBatchServiceRole", AssumeRolePolicyDocument=BATCH_TRUST,
                                    Description="made by hand")["Role"]
        self.stack_set()
        op = self.deploy([ous["workloads"], ous["legacy"]], OperationPreferences={
            "FailureToleranceCount": 1, "MaxConcurrentCount": 2})
        self.assertEqual(op["Status"], "SUCCEEDED")  # one failure, within the tolerance
        reason = ("ResourceLogicalId:RoleAWSBatchServiceRole, ResourceType:AWS::IAM::Role, "
                  "ResourceStatusReason:AWSBatchServiceRole already exists.")
        self.assertEqual(self.results(op["OperationId"])[legacy]["StatusReason"], reason)
        instance = self.instances()[legacy]
        self.assertEqual((instance["Status"], instance["StackInstanceStatus"]["DetailedStatus"], instance["StatusReason"]),
                         ("OUTDATED", "FAILED", reason))
        # The hand-made role is exactly as it was, and nothing the stack made stays in that account (rolled back).
        role = iam.get_role(RoleName="AWSBatchServiceRole")["Role"]
        self.assertEqual((role["RoleId"], role["Description"], role.get("Tags", [])),
                         (hand_made["RoleId"], "made by hand", []))
        self.assertEqual(iam.list_attached_role_policies(RoleName="AWSBatchServiceRole")["AttachedPolicies"], [])
        self.assertEqual(self.roles(legacy), {"AWSBatchServiceRole"})
        self.assertEqual(iam.list_instance_profiles()["InstanceProfiles"], [])
        self.assertEqual(iam.list_policies(Scope="Local")["Policies"], [])
        # The other accounts have the stack: its roles with their managed policy and tags, the profile, the policy, and
        # the stack itself, in the account.
        good = accounts["workloads"][0]
        member = self.member(good)
        attached = member.list_attached_role_policies(RoleName="AWSBatchServiceRole")["AttachedPolicies"]
        self.assertEqual(sorted(p["PolicyName"] for p in attached), ["AWSBatchServiceRole", "SLIMWorkflowPassRoles"])
        self.assertEqual(member.get_role(RoleName="AWSBatchServiceRole")["Role"]["Tags"],
                         [{"Key": "wfboot:stack", "Value": "slim-workflow"}])
        self.assertEqual([p["InstanceProfileName"] for p in member.list_instance_profiles()["InstanceProfiles"]],
                         ["SLIM-Extras_ECS_for_EC2"])
        stacks = self.member(good, "cloudformation").describe_stacks()["Stacks"]
        self.assertEqual([(s["StackId"], s["StackStatus"]) for s in stacks],
                         [(self.instances()[good]["StackId"], "CREATE_COMPLETE")])
        self.assertTrue(stacks[0]["StackName"].startswith("StackSet-wfboot-slim-"))
        # Which stack owns a resource, asked in the account (DescribeStackResources by PhysicalResourceId): the
        # stack's role is owned, the hand-made one is not.
        owned = self.member(good, "cloudformation").describe_stack_resources(PhysicalResourceId="AWSBatchServiceRole")
        self.assertEqual({(x["StackId"], x["LogicalResourceId"], x["ResourceType"]) for x in owned["StackResources"]
                          if x["PhysicalResourceId"] == "AWSBatchServiceRole"},
                         {(stacks[0]["StackId"], "RoleAWSBatchServiceRole", "AWS::IAM::Role")})
        self.assertEqual(len(owned["StackResources"]), 4)  # and the stack's other resources
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.member(legacy, "cloudformation").describe_stack_resources(PhysicalResourceId="AWSBatchServiceRole")
        self.assertEqual(e.exception.response["Error"]["Code"], "ValidationError")
        # A resource another stack owns: "... already exists in stack ARN."
        self.stack_set("wfboot-copy")
        op = self.deploy([ous["workloads"]], name="wfboot-copy")
        self.assertEqual(self.results(op["OperationId"], "wfboot-copy")[good]["StatusReason"],
                         "ResourceLogicalId:RoleAWSBatchServiceRole, ResourceType:AWS::IAM::Role, ResourceStatusReason:"
                         f"AWSBatchServiceRole already exists in stack {stacks[0]['StackId']}.")

    def test_a_service_linked_role_that_exists_fails_the_instance_and_the_override_creates_none(self) -> None:
        _root, ous, accounts = self.organisation({"workloads": 2})
        has_it, other = accounts["workloads"]
        self.member(has_it).create_service_linked_role(AWSServiceName="batch.amazonaws.com")
        self.stack_set()
        op = self.deploy([ous["workloads"]], OperationPreferences={"FailureToleranceCount": 1, "MaxConcurrentCount": 2})
        reason = self.results(op["OperationId"])[has_it]["StatusReason"]
        self.assertRegex(reason, r"^ResourceLogicalId:ServiceLinkedRoleBatch, ResourceType:AWS::IAM::ServiceLinkedRole, "
                                 r"ResourceStatusReason:Service role name AWSServiceRoleForbatch has been taken in this "
                                 r"account, please try a different suffix\. \(Service: AmazonIdentityManagement; Status "
                                 r"Code: 400; Error Code: InvalidInput; Request ID: [-0-9a-f]+\)$")
        self.assertEqual(self.results(op["OperationId"])[other]["Status"], "SUCCEEDED")
        self.assertEqual(self.roles(other), {"AWSBatchServiceRole", "AWSServiceRoleForbatch"})
        # CreateServiceLinkedRoles=false for that account (ParameterOverrides): its instance succeeds, creating none.
        op_id = self.cf.update_stack_instances(
            StackSetName="wfboot-slim", Regions=["us-east-1"],
            DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]], "Accounts": [has_it],
                               "AccountFilterType": "INTERSECTION"},
            ParameterOverrides=[{"ParameterKey": "CreateServiceLinkedRoles", "ParameterValue": "false"}])["OperationId"]
        self.assertEqual(self.wait(op_id)["Status"], "SUCCEEDED")
        self.assertEqual(list(self.results(op_id)), [has_it])
        instance = self.cf.describe_stack_instance(StackSetName="wfboot-slim", StackInstanceAccount=has_it,
                                                   StackInstanceRegion="us-east-1")["StackInstance"]
        self.assertEqual((instance["Status"], instance["ParameterOverrides"]),
                         ("CURRENT", [{"ParameterKey": "CreateServiceLinkedRoles", "ParameterValue": "false"}]))
        slrs = [r for r in self.member(has_it).list_roles(PathPrefix="/aws-service-role/")["Roles"]]
        self.assertEqual(len(slrs), 1)  # the one that was there

    def test_deployment_targets_reach_child_ous_and_the_root_filter_accounts_and_skip_the_management_account(self) -> None:
        root, ous, accounts = self.organisation({"workloads": 2, "workloads/child": 1, "legacy": 1})
        w0, w1 = accounts["workloads"]
        (child,) = accounts["workloads/child"]
        (legacy,) = accounts["legacy"]
        fast = {"MaxConcurrentPercentage": 100}
        cases = [
            ({"OrganizationalUnitIds": [ous["workloads"]]}, {w0, w1, child}),
            ({"OrganizationalUnitIds": [ous["workloads"]], "Accounts": [w1], "AccountFilterType": "DIFFERENCE"}, {w0, child}),
            ({"OrganizationalUnitIds": [ous["workloads"]], "Accounts": [w1, legacy], "AccountFilterType": "INTERSECTION"},
             {w1}),
            ({"OrganizationalUnitIds": [ous["workloads/child"]], "Accounts": [legacy], "AccountFilterType": "UNION"},
             {child, legacy}),
            ({"OrganizationalUnitIds": [root]}, {w0, w1, child, legacy}),  # never the management account
        ]
        for i, (targets, expected) in enumerate(cases):
            name = f"targets-{i}"
            self.stack_set(name, TemplateBody=template_named(f"-{i}"))
            op_id = self.cf.create_stack_instances(StackSetName=name, Regions=["us-east-1"], DeploymentTargets=targets,
                                                   OperationPreferences=fast)["OperationId"]
            self.assertEqual(self.wait(op_id, name)["Status"], "SUCCEEDED")
            self.assertEqual(set(self.instances(name)), expected, targets)
            self.assertNotIn(self.mgmt, self.results(op_id, name))
        self.assertEqual(self.instances("targets-0")[child]["OrganizationalUnitId"], ous["workloads"])
        many = [f"ou-abcd-{i:08d}" for i in range(51)]
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.cf.create_stack_instances(StackSetName="targets-0", Regions=["us-east-1"],
                                           DeploymentTargets={"OrganizationalUnitIds": many})
        self.assertEqual(e.exception.response["Error"]["Code"], "ValidationError")
        self.assertIn("50", e.exception.response["Error"]["Message"])


class StackSetLifecycleTest(StackSets, unittest.TestCase):
    """Describing, updating, deleting, auto-deployment, trusted access and delegated administrators."""

    def test_describe_stack_set_answers_its_settings_and_an_update_leaves_instances_outdated_until_it_reaches_them(
            self) -> None:
        _root, ous, accounts = self.organisation({"workloads": 2})
        self.stack_set(Tags=[{"Key": "team", "Value": "imaging"}], ManagedExecution={"Active": True},
                       Parameters=[{"ParameterKey": "CreateServiceLinkedRoles", "ParameterValue": "false"}],
                       AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": True})
        self.deploy([ous["workloads"]])
        s = self.cf.describe_stack_set(StackSetName="wfboot-slim")["StackSet"]
        self.assertEqual(s["AutoDeployment"], {"Enabled": True, "RetainStacksOnAccountRemoval": True})
        self.assertEqual((s["PermissionModel"], s["ManagedExecution"], s["Capabilities"], s["Tags"]),
                         ("SERVICE_MANAGED", {"Active": True}, NAMED_IAM, [{"Key": "team", "Value": "imaging"}]))
        self.assertEqual(s["Parameters"], [{"ParameterKey": "CreateServiceLinkedRoles", "ParameterValue": "false"}])
        self.assertEqual((json.loads(s["TemplateBody"]), s["OrganizationalUnitIds"]), (STACKSET_TEMPLATE, [ous["workloads"]]))
        # The update: a tag more on the role, auto-deployment off.
        template = json.loads(TEMPLATE_BODY)
        template["Resources"]["RoleAWSBatchServiceRole"]["Properties"]["Tags"].append({"Key": "owner", "Value": "lab"})
        # The update's first account runs until settled: the instances are read before it reaches either.
        self.control({"stackset_account_seconds": 60})
        op_id = self.cf.update_stack_set(StackSetName="wfboot-slim", TemplateBody=json.dumps(template),
                                         Capabilities=NAMED_IAM, Tags=[{"Key": "team", "Value": "vision"}],
                                         Parameters=[{"ParameterKey": "CreateServiceLinkedRoles", "UsePreviousValue": True}],
                                         AutoDeployment={"Enabled": False})["OperationId"]
        self.assertEqual({(i["Status"], i["StackInstanceStatus"]["DetailedStatus"]) for i in self.instances().values()}
                         - {("OUTDATED", "RUNNING")}, {("OUTDATED", "PENDING")})
        self.control({"stackset_account_seconds": 0.05})
        self.control({"stacksets_settle": True})
        self.assertEqual(self.wait(op_id)["Status"], "SUCCEEDED")
        self.assertEqual({(i["Status"], i["StackInstanceStatus"]["DetailedStatus"], i["OrganizationalUnitId"],
                           i["LastOperationId"]) for i in self.instances().values()},
                         {("CURRENT", "SUCCEEDED", ous["workloads"], op_id)})
        s = self.cf.describe_stack_set(StackSetName="wfboot-slim")["StackSet"]
        self.assertEqual((s["Tags"], s["AutoDeployment"]), ([{"Key": "team", "Value": "vision"}],
                                                           {"Enabled": False, "RetainStacksOnAccountRemoval": True}))
        tags = self.member(accounts["workloads"][0]).get_role(RoleName="AWSBatchServiceRole")["Role"]["Tags"]
        self.assertEqual(sorted(t["Key"] for t in tags), ["owner", "wfboot:stack"])
        self.assertEqual(set(self.instances(Filters=[{"Name": "DETAILED_STATUS", "Values": "SUCCEEDED"}])),
                         set(accounts["workloads"]))
        self.assertEqual(self.instances(Filters=[{"Name": "DETAILED_STATUS", "Values": "FAILED"}]), {})
        self.assertEqual(set(self.instances(StackInstanceAccount=accounts["workloads"][1])), {accounts["workloads"][1]})

    def test_deleting_instances_deletes_their_resources_unless_retained_and_the_stack_set_only_once_empty(self) -> None:
        _root, ous, accounts = self.organisation({"workloads": 1, "legacy": 2})
        (w,), (stuck, legacy) = accounts["workloads"], accounts["legacy"]
        self.stack_set()
        self.deploy([ous["workloads"], ous["legacy"]], OperationPreferences={"MaxConcurrentPercentage": 100})
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.cf.delete_stack_set(StackSetName="wfboot-slim")
        self.assertEqual(e.exception.response["Error"]["Code"], "StackSetNotEmptyException")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 409)
        # The deletion runs until settled (at the class's 0.05 s an account it could end before the next call came).
        self.control({"stackset_account_seconds": 60})
        delete = self.cf.delete_stack_instances(StackSetName="wfboot-slim", Regions=["us-east-1"], RetainStacks=False,
                                                DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]})
        with self.assertRaises(botocore.exceptions.ClientError) as e:  # while the deletion runs
            self.cf.delete_stack_set(StackSetName="wfboot-slim")
        self.assertEqual(e.exception.response["Error"]["Code"], "OperationInProgressException")
        self.control({"stackset_account_seconds": 0.05})
        self.control({"stacksets_settle": True})
        self.assertEqual(self.wait(delete["OperationId"])["Status"], "SUCCEEDED")
        member = self.member(w)
        self.assertEqual(self.roles(w), set())
        self.assertEqual((member.list_instance_profiles()["InstanceProfiles"], member.list_policies(Scope="Local")["Policies"]),
                         ([], []))
        self.assertEqual(self.member(w, "cloudformation").describe_stacks()["Stacks"], [])
        self.assertNotIn(ous["workloads"], self.cf.describe_stack_set(StackSetName="wfboot-slim")["StackSet"][
            "OrganizationalUnitIds"])
        # A deletion IAM refuses (someone attached the stack's policy to a user): the instance is INOPERABLE.
        iam = self.member(stuck)
        iam.create_user(UserName="operator")
        policy_arn = f"arn:aws:iam::{stuck}:policy/SLIMWorkflowPassRoles"
        iam.attach_user_policy(UserName="operator", PolicyArn=policy_arn)
        failed = self.cf.delete_stack_instances(StackSetName="wfboot-slim", Regions=["us-east-1"], RetainStacks=False,
                                                DeploymentTargets={"OrganizationalUnitIds": [ous["legacy"]],
                                                                   "Accounts": [stuck], "AccountFilterType": "INTERSECTION"})
        self.assertEqual(self.wait(failed["OperationId"])["Status"], "FAILED")
        instance = self.instances()[stuck]
        self.assertEqual((instance["Status"], instance["StackInstanceStatus"]["DetailedStatus"]), ("INOPERABLE", "INOPERABLE"))
        self.assertRegex(instance["StatusReason"], r"^ResourceLogicalId:PolicyPassRoles, ResourceType:AWS::IAM::"
                                                   r"ManagedPolicy, ResourceStatusReason:Cannot delete a policy attached "
                                                   r"to entities\. \(Service: AmazonIdentityManagement; Status Code: 409; "
                                                   r"Error Code: DeleteConflict; Request ID: [-0-9a-f]+\)$")
        self.assertEqual([p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]], [policy_arn])
        retain = self.cf.delete_stack_instances(StackSetName="wfboot-slim", Regions=["us-east-1"], RetainStacks=True,
                                                DeploymentTargets={"OrganizationalUnitIds": [ous["legacy"]]})
        self.assertEqual(self.wait(retain["OperationId"])["Status"], "SUCCEEDED")
        self.assertEqual(self.instances(), {})  # the INOPERABLE one too
        self.assertEqual(self.roles(legacy), {"AWSBatchServiceRole", "AWSServiceRoleForbatch"})  # kept
        self.cf.delete_stack_set(StackSetName="wfboot-slim")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.cf.describe_stack_set(StackSetName="wfboot-slim")
        self.assertEqual(e.exception.response["Error"]["Code"], "StackSetNotFoundException")
        self.assertEqual([s["Status"] for s in self.cf.list_stack_sets(Status="DELETED")["Summaries"]], ["DELETED"])

    def test_an_account_moved_into_a_targeted_ou_gets_an_instance_and_one_moved_out_loses_it(self) -> None:
        root, ous, accounts = self.organisation({"workloads": 1, "sandbox": 1})
        (moving,) = accounts["sandbox"]
        self.stack_set()
        self.deploy([ous["workloads"]])
        self.org.move_account(AccountId=moving, SourceParentId=ous["sandbox"], DestinationParentId=ous["workloads"])
        ops = self.cf.list_stack_set_operations(StackSetName="wfboot-slim")["Summaries"]
        self.assertEqual(len(ops), 2)
        self.assertEqual(self.wait(ops[-1]["OperationId"])["Status"], "SUCCEEDED")
        self.assertEqual(self.instances()[moving]["Status"], "CURRENT")
        self.assertEqual(self.roles(moving), {"AWSBatchServiceRole", "AWSServiceRoleForbatch"})
        # A new account created in the organisation (in the root), then moved to the OU: CURRENT too.
        new = self.org.create_account(Email="new@example.com", AccountName="new")["CreateAccountStatus"]["AccountId"]
        self.org.move_account(AccountId=new, SourceParentId=root, DestinationParentId=ous["workloads"])
        self.wait(self.cf.list_stack_set_operations(StackSetName="wfboot-slim")["Summaries"][-1]["OperationId"])
        self.assertEqual(self.instances()[new]["Status"], "CURRENT")
        # Moved out of every targeted OU: its instance and resources are deleted (RetainStacksOnAccountRemoval false).
        self.org.move_account(AccountId=moving, SourceParentId=ous["workloads"], DestinationParentId=ous["sandbox"])
        last = self.cf.list_stack_set_operations(StackSetName="wfboot-slim")["Summaries"][-1]
        self.assertEqual(last["Action"], "DELETE")
        self.wait(last["OperationId"])
        self.assertNotIn(moving, self.instances())
        self.assertEqual(self.roles(moving), set())
        # With RetainStacksOnAccountRemoval the resources stay.
        self.cf.update_stack_set(StackSetName="wfboot-slim", UsePreviousTemplate=True, Capabilities=NAMED_IAM,
                                 AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": True})
        self.wait(self.cf.list_stack_set_operations(StackSetName="wfboot-slim")["Summaries"][-1]["OperationId"])
        self.org.move_account(AccountId=new, SourceParentId=ous["workloads"], DestinationParentId=root)
        self.wait(self.cf.list_stack_set_operations(StackSetName="wfboot-slim")["Summaries"][-1]["OperationId"])
        self.assertNotIn(new, self.instances())
        self.assertEqual(self.roles(new), {"AWSBatchServiceRole", "AWSServiceRoleForbatch"})

    def test_service_managed_needs_trusted_access_and_a_registered_delegated_administrator_works_on_the_management_accounts(
            self) -> None:
        _root, ous, accounts = self.organisation({"workloads": 2}, trusted=False)
        admin, other = accounts["workloads"]
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.stack_set()
        self.assertEqual(e.exception.response["Error"], {
            "Type": "Sender", "Code": "ValidationError",
            "Message": "You must enable organizations access to operate a service managed stack set"})
        self.assertEqual(self.cf.describe_organizations_access()["Status"], "DISABLED")
        self.org.enable_aws_service_access(ServicePrincipal=STACKSETS_PRINCIPAL)  # the Organizations side of it
        self.assertEqual(self.cf.describe_organizations_access()["Status"], "ENABLED")
        self.cf.deactivate_organizations_access()
        self.assertEqual(self.org.list_aws_service_access_for_organization()["EnabledServicePrincipals"], [])
        self.cf.activate_organizations_access()
        self.assertEqual([p["ServicePrincipal"] for p in
                          self.org.list_aws_service_access_for_organization()["EnabledServicePrincipals"]],
                         [STACKSETS_PRINCIPAL])
        self.org.register_delegated_administrator(AccountId=admin, ServicePrincipal=STACKSETS_PRINCIPAL)
        delegated = self.member(admin, "cloudformation")
        delegated.create_stack_set(StackSetName="by-admin", TemplateBody=TEMPLATE_BODY, PermissionModel="SERVICE_MANAGED",
                                   Capabilities=NAMED_IAM, CallAs="DELEGATED_ADMIN")
        # It lives in the management account: the management account sees it with CallAs SELF.
        s = self.cf.describe_stack_set(StackSetName="by-admin")["StackSet"]
        self.assertTrue(s["StackSetARN"].startswith(f"arn:aws:cloudformation:us-east-1:{self.mgmt}:stackset/by-admin:"))
        self.assertEqual([x["StackSetName"] for x in delegated.list_stack_sets(CallAs="DELEGATED_ADMIN")["Summaries"]],
                         ["by-admin"])
        self.assertEqual(delegated.list_stack_sets()["Summaries"], [])  # CallAs SELF: the member's own
        op_id = delegated.create_stack_instances(StackSetName="by-admin", Regions=["us-east-1"], CallAs="DELEGATED_ADMIN",
                                                 DeploymentTargets={"OrganizationalUnitIds": [ous["workloads"]]},
                                                 OperationPreferences={"MaxConcurrentCount": 2})["OperationId"]
        self.assertEqual(self.wait(op_id, "by-admin")["Status"], "SUCCEEDED")
        # The management account calling as a delegated administrator is refused: it cannot be one.
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.cf.describe_stack_set(StackSetName="by-admin", CallAs="DELEGATED_ADMIN")
        self.assertEqual(e.exception.response["Error"]["Code"], "ValidationError")
        self.assertEqual(e.exception.response["Error"]["Message"], "Account used is not a delegated administrator")
        # An account that is not registered is refused, as is CallAs SELF for a service-managed StackSet from a member.
        stranger = self.member(other, "cloudformation")
        for call in (lambda: stranger.list_stack_sets(CallAs="DELEGATED_ADMIN"),
                     lambda: stranger.create_stack_set(StackSetName="x", TemplateBody=TEMPLATE_BODY,
                                                       PermissionModel="SERVICE_MANAGED", Capabilities=NAMED_IAM)):
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                call()
            self.assertEqual(e.exception.response["Error"]["Message"],
                             "You must be the master or delegated admin account of an organization before operating a "
                             "SERVICE_MANAGED stack set")


def run_group(ids: list[str]) -> tuple[str, int, int, int]:
    """Run the tests `ids` (one class's, or one test) in this process; return the report and the counts."""
    import io
    stream = io.StringIO()
    suite = unittest.defaultTestLoader.loadTestsFromNames(ids, module=sys.modules[__name__])
    result = unittest.TextTestRunner(stream=stream, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    return stream.getvalue(), result.testsRun, failed, len(result.skipped)


def groups() -> list[list[str]]:
    """The unit of parallel work: a class with class fixtures (one shared emulator or node process) runs whole in
    one worker; every other test alone. Longest first would need timings; class groups go first, being longest."""
    whole, single = [], []
    for case in unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]):
        for cls_suite in [case]:
            ids = [t.id().split(".", 1)[1] for t in cls_suite]  # "Class.test_name"
            if not ids:
                continue
            cls = type(next(iter(cls_suite)))
            if "setUpClass" in cls.__dict__:
                whole.append(ids)
            else:
                single.extend([i] for i in ids)
    return whole + single


def main() -> int:
    import argparse
    from concurrent.futures import ProcessPoolExecutor
    p = argparse.ArgumentParser(description="the emulator's self-tests")
    # Each test starts its own emulator subprocess and mostly waits (moto's start-up, lag windows), so several
    # run at once; every worker is a separate process (boto3's default session is not thread-safe).
    p.add_argument("--jobs", type=int, default=int(os.environ.get("EMULATOR_TEST_JOBS", "4")))
    p.add_argument("names", nargs="*", help="Class or Class.test_name to run (default: all)")
    args = p.parse_args()
    work = [[n] for n in args.names] if args.names else groups()
    started = time.monotonic()
    ran = failed = skipped = 0
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for report, n, f, s in pool.map(run_group, work):
            sys.stderr.write(report)
            ran, failed, skipped = ran + n, failed + f, skipped + s
    passed = ran - failed - skipped
    # A plain closing line that CI can count.
    print(f"emulator: {passed} passed, {failed} failed, {skipped} skipped "
          f"({time.monotonic() - started:.0f} s, {args.jobs} at a time)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
