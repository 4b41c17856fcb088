"""Write docs/openapi.json: the API's OpenAPI 3.1 document as GET /openapi.json serves it.

  python -m backend.openapi          # rewrite docs/openapi.json
  python -m backend.openapi --check  # exit 1 when the committed file is not the generated one

The document is generated from the code (chalicelib/api/openapi.py and app.py's routes); the
committed copy is for readers and tools that have no running API. A test fails while the two differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend import jsonfmt

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def generated() -> str:
    import app as backdrop_app
    from chalicelib.api import openapi

    return jsonfmt.dumps(openapi.document(backdrop_app.app.routes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/openapi.json is current")
    args = parser.parse_args(argv)
    text = generated()
    current = DOC_PATH.read_text() if DOC_PATH.exists() else ""
    if current == text:
        print(f"{DOC_PATH}: up to date")
        return 0
    if args.check:
        print(f"{DOC_PATH} is not the generated document: run `python -m backend.openapi`", file=sys.stderr)
        return 1
    DOC_PATH.write_text(text)
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
