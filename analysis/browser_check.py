"""Open an HTML display in headless Chromium: console errors and a non-blank screenshot.

Chromium (``--enable-logging=stderr``) writes every console message as an
``INFO:CONSOLE`` line whatever its level, so the page is loaded from a copy
whose first script tags ``console.error`` calls with :data:`ERROR_TAG`;
uncaught exceptions already read ``Uncaught ...``. WebGL runs on SwiftShader
(software), so 3D scatter plots render without a GPU.

A screenshot is "not blank" when the plot area (the left three quarters,
below the title and buttons) holds at least ``min_pixels`` saturated pixels:
the coloured markers that only WebGL draws there.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

__all__ = ["find_chromium", "check_html", "BrowserCheck", "CHROMIUM_FLAGS"]

ERROR_TAG = "[console.error]"
_TAGGER = ("<script>(function(){var e=console.error;console.error=function(){"
           "e.apply(console,['" + ERROR_TAG + "'].concat([].slice.call(arguments)));};})();</script>")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0")
_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] \"(.*)\", source: (.*)$")
_ERROR_MARKS = (ERROR_TAG, "Uncaught", "Failed to load resource", "WebGL: CONTEXT_LOST")


@dataclass
class BrowserCheck:
    """Outcome of :func:`check_html`."""

    console: List[str] = field(default_factory=list)   # every console message
    errors: List[str] = field(default_factory=list)    # the error ones
    coloured_pixels: int = 0
    screenshot: Optional[Path] = None
    min_pixels: int = 200

    @property
    def blank(self) -> bool:
        return self.coloured_pixels < self.min_pixels

    @property
    def ok(self) -> bool:
        return not self.errors and not self.blank

    def describe(self) -> str:
        """A few lines for a log or an assertion message."""
        lines = [f"console errors: {len(self.errors)}", *[f"  {e}" for e in self.errors],
                 f"coloured pixels in the plot area: {self.coloured_pixels} "
                 f"({'blank' if self.blank else 'not blank'}), screenshot {self.screenshot}"]
        return "\n".join(lines)


def find_chromium() -> Optional[str]:
    """Path of a Chromium/Chrome executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _tagged_copy(html: Path, folder: Path) -> Path:
    """The page with the console.error tagger, plus the local scripts it loads (plotly.js)."""
    text = html.read_text(encoding="utf-8")
    for src in re.findall(r'<script[^>]*\ssrc="([^":]+\.js)"', text):
        local = html.parent / src
        if local.is_file():
            shutil.copy(local, folder / local.name)
    head = re.search(r"<head[^>]*>", text, flags=re.IGNORECASE)
    text = text[:head.end()] + _TAGGER + text[head.end():] if head else _TAGGER + text
    copy = folder / html.name
    copy.write_text(text, encoding="utf-8")
    return copy


def coloured_pixels(png: Path, saturation: int = 60) -> int:
    """Saturated pixels (max - min channel >= ``saturation``) in the plot area of a screenshot."""
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    height, width, _ = image.shape
    area = image[int(0.15 * height):int(0.97 * height), :int(0.75 * width)]
    spread = area.max(axis=2) - area.min(axis=2)
    return int(np.count_nonzero(spread >= saturation))


def check_html(html: Path, screenshot: Path, chromium: Optional[str] = None,
               timeout: float = 180.0, window: str = "1200,900", min_pixels: int = 200) -> BrowserCheck:
    """Load ``html`` in headless Chromium, collect console errors, save a screenshot.

    Parameters
    ----------
    html : path
        The page (plotly.js embedded, or a local file beside it).
    screenshot : path
        PNG written by Chromium.
    chromium : str, optional
        Executable (default: :func:`find_chromium`).
    timeout : float
        Seconds before the browser is killed.
    window : str
        Window size ``W,H``.
    min_pixels : int
        Coloured pixels below which the screenshot counts as blank.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium executable found (apt-get install chromium)")
    html, screenshot = Path(html).resolve(), Path(screenshot).resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        page = _tagged_copy(html, Path(folder))
        profile = Path(folder) / "profile"
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                   f"--window-size={window}", "--virtual-time-budget=10000",
                   f"--screenshot={screenshot}", page.as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    result = BrowserCheck(screenshot=screenshot, min_pixels=min_pixels)
    for line in done.stderr.splitlines():
        match = _CONSOLE.search(line)
        if match:
            result.console.append(match.group(1))
            if any(mark in match.group(1) for mark in _ERROR_MARKS):
                result.errors.append(f"{match.group(1)} ({match.group(2)})")
    if not screenshot.is_file():
        result.errors.append(f"chromium wrote no screenshot (exit {done.returncode}): "
                             f"{done.stderr[-500:]}")
        return result
    result.coloured_pixels = coloured_pixels(screenshot)
    return result
