#!/usr/bin/env python3
"""A Lambda Runtime API (version 2018-06-01) for the tests of FMI::Lambda::serve.

    runtime_api_fixture.py --invocations FILE --log FILE [--port P]

A real HTTP server on 127.0.0.1 that serves the documented paths the way Lambda
does for a custom runtime, with the invocations given in FILE (a JSON list of
{"request_id", "event" (any JSON) or "event_text" (raw body), "deadline_in_ms"
(default 60000), "function_arn", "trace_id"}):

  GET  /2018-06-01/runtime/invocation/next           200 with the next invocation and
       the headers Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn,
       -Trace-Id (each only when given); 410 when none is left (Lambda would block:
       here a client asking once too often must fail the test, not hang it)
  POST /2018-06-01/runtime/invocation/{id}/response  202; 400 for an id that was not
       handed out or is already answered; 413 for a body over 6 MiB (Lambda's limit),
       the invocation staying open
  POST /2018-06-01/runtime/invocation/{id}/error     202 (same check)
  POST /2018-06-01/runtime/init/error                202; 403 after the first next

Every request is appended to the log FILE as one JSON line: {"method", "path",
"kind" (next, response, error, init_error, unknown), "request_id", "status",
"error_type" (the Lambda-Runtime-Function-Error-Type header), "body"}, written and
flushed before the answer goes out, so a test that saw the answer can read it.
Prints "listening on 127.0.0.1:PORT" once ready. Python 3 standard library only.
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/2018-06-01/runtime"
# Lambda's limit on a synchronous response.
MAX_RESPONSE = 6 * 1024 * 1024
INVOCATION_RE = re.compile(r"^" + re.escape(API) + r"/invocation/([^/]+)/(response|error)$")


class State:
    def __init__(self, invocations, log_path):
        self.pending = list(invocations)
        self.open_ids = set()
        self.handed_out = False
        self.lock = threading.Lock()
        self.log = open(log_path, "a", encoding="utf-8")

    def record(self, **entry):
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Lambda's API; every answer has a length

    def log_message(self, fmt, *args):  # quiet: the log file is the record
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        if self.path != API + "/invocation/next":
            st.record(method="GET", path=self.path, kind="unknown", status=404)
            return self.answer(404, b'{"errorType": "NotFound"}')
        with st.lock:
            inv = st.pending.pop(0) if st.pending else None
            if inv is not None:
                st.open_ids.add(inv["request_id"])
            st.handed_out = True
        if inv is None:
            st.record(method="GET", path=self.path, kind="next", status=410)
            return self.answer(410, b'{"errorType": "NoMoreInvocations"}')
        body = inv["event_text"] if "event_text" in inv else json.dumps(inv.get("event", {}))
        deadline = int(time.time() * 1000) + int(inv.get("deadline_in_ms", 60000))
        headers = [("Lambda-Runtime-Aws-Request-Id", inv["request_id"]),
                   ("Lambda-Runtime-Deadline-Ms", str(deadline))]
        if "function_arn" in inv:
            headers.append(("Lambda-Runtime-Invoked-Function-Arn", inv["function_arn"]))
        if "trace_id" in inv:
            headers.append(("Lambda-Runtime-Trace-Id", inv["trace_id"]))
        st.record(method="GET", path=self.path, kind="next", request_id=inv["request_id"], status=200)
        self.answer(200, body.encode("utf-8"), headers)

    def do_POST(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        m = INVOCATION_RE.match(self.path)
        if self.path == API + "/init/error":
            kind, request_id = "init_error", None
            with st.lock:
                status = 403 if st.handed_out else 202
        elif m:
            request_id, kind = m.group(1), m.group(2)
            with st.lock:
                if request_id not in st.open_ids:
                    status = 400
                elif kind == "response" and length > MAX_RESPONSE:
                    status = 413  # the invocation stays open for an error
                else:
                    status = 202
                    st.open_ids.discard(request_id)
        else:
            kind, request_id, status = "unknown", None, 404
        st.record(method="POST", path=self.path, kind=kind, request_id=request_id, status=status,
                  error_type=error_type, body=body)
        self.answer(status, b'{"status": "OK"}' if status == 202 else b'{"errorType": "InvalidRequest"}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--invocations", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    with open(args.invocations, encoding="utf-8") as f:
        invocations = json.load(f)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(invocations, args.log)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
