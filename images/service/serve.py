#!/usr/bin/python3
"""The example stack's service: JSON over HTTP on $SERVICE_PORT (default 8000).

GET /health -> {"status": "ok"}
GET /info   -> what the image is (stackinfo.describe())
anything else -> 404 with {"error": ...}

`serve.py --once` prints the /info answer and exits (the manifest page's info command).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stackinfo import describe


def answer(path):
    """The status and JSON body for a GET of `path`."""
    if path == "/health":
        return 200, {"status": "ok"}
    if path == "/info":
        return 200, describe()
    return 404, {"error": f"no such path: {path}"}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = answer(self.path.split("?", 1)[0])
        data = json.dumps(body, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(argv):
    if "--once" in argv:
        print(json.dumps(answer("/info")[1], indent=2, sort_keys=True))
        return
    port = int(os.environ.get("SERVICE_PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    # Integration tests wait for this line (tests.integration.wait_log in spec.yml).
    print(f"serving on port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
