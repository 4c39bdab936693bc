#!/usr/bin/env python3
"""Print the Subresource Integrity hashes (sha384) of widget.js and widget.css.

Needs nothing but Python: run it on the files you serve, after every upgrade, and paste the
result into the embedding tag's integrity="..." attribute (see docs/widget.md, "Subresource Integrity").

    python3 widget/sri.py            # the files next to this script
    python3 widget/sri.py FILE...    # any files
"""

import base64
import hashlib
import sys
from pathlib import Path


def sri(data: bytes) -> str:
    """The integrity value of these bytes: "sha384-" + base64 of the SHA-384 digest."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    paths = [Path(a) for a in argv] or [here / "widget.js", here / "widget.css"]
    for path in paths:
        print(f"{path.name}  {sri(path.read_bytes())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
