"""`python -m graph_simulator --tenant FILE [--port P] [--host H] [--latency-ms L]`."""

from __future__ import annotations

import argparse
import sys

from graph_simulator import TenantFileError, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graph_simulator",
                                     description="Serve a tenant file as Graph v1.0.")
    parser.add_argument("--tenant", required=True, help="tenant file (JSON)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0)
    args = parser.parse_args(argv)
    try:
        serve(args.tenant, host=args.host, port=args.port, latency_ms=args.latency_ms)
    except TenantFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
