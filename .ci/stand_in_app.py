"""Stands in for the application the dev stack scrapes (job `api` in stacks/Pulumi.dev.yaml), so
that a throwaway dev deployment in CI has every target up when `components.tools.verify` looks.

    python3 .ci/stand_in_app.py --host 0.0.0.0 --port 8000 --path /api/v1/metrics

It serves one gauge in Prometheus's text format at --path and 404 elsewhere, until it is stopped.
On a CI runner it listens on every address, because containers reach the host through the
bridge gateway (host.docker.internal), not through loopback; the tests run it on 127.0.0.1.
"""

import argparse
import http.server

BODY = (
    b"# HELP ci_stand_in_up 1 while the CI stand-in for the dev application runs.\n"
    b"# TYPE ci_stand_in_up gauge\n"
    b"ci_stand_in_up 1\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    args = parser.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != args.path:
                self.send_error(404)
                return
            self.send_response(200)
            # Prometheus 3 refuses a scrape whose Content-Type it does not know.
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

    http.server.ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
