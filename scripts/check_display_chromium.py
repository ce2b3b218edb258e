#!/usr/bin/env python
"""Check an event display HTML in headless Chromium: no console errors, screenshot not blank.

    python scripts/check_display_chromium.py OUT/tiny_0_entry0.html [--screenshot shot.png]

Exit status: 0 passed, 1 failed, 2 Chromium not installed (``apt-get install -y chromium``).
The logic lives in :mod:`analysis.browser_check` (also used by the tests).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.browser_check import check_html, find_chromium  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="HTML written by `mlreco-spice display`")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="where to save the screenshot (default: next to the HTML, .chromium.png)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        parser.error(f"not a file: {args.html}")
    if find_chromium() is None:
        print("chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    screenshot = args.screenshot or args.html.with_suffix(".chromium.png")
    result = check_html(args.html, screenshot, timeout=args.timeout)
    print(result.describe())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
