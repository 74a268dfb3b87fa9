"""Command line: serve the API, or apply database migrations."""

from __future__ import annotations

import argparse
import json
import os
import sys

from free4allweb_api import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="free4allweb-api", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API under uvicorn")
    serve.add_argument("--host", default=os.environ.get("F4A_HOST", "0.0.0.0"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("F4A_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("F4A_WORKERS", "1")))

    sub.add_parser("migrate", help="apply pending migrations to DATABASE_URL")
    sub.add_parser("pending", help="list migrations not yet applied to DATABASE_URL")

    args = parser.parse_args(argv)
    if args.command == "serve":
        import uvicorn

        uvicorn.run(
            "free4allweb_api.asgi:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips="*",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=10,
        )
        return 0

    from free4allweb_api import migrations

    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is required", file=sys.stderr)
        return 2
    if args.command == "migrate":
        applied = migrations.migrate(url)
        print(json.dumps({"applied": applied, "changed": bool(applied)}))
    else:
        print(json.dumps({"pending": migrations.pending(url)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
