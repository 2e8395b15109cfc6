"""A real headless Chromium driven over the DevTools protocol (aiohttp websocket), for page tests.

Collects console errors, uncaught exceptions, log errors (CSP violations among them) and every
network request while a page loads; evaluates JavaScript; takes full-page PNG screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLoad:
    """What happened while a page loaded, and what it looks like."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    facts: Any = None
    screenshot: bytes = b""
    """The whole page."""
    detail: bytes = b""
    """Only the element the caller named."""


async def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    for _ in range(300):
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        await asyncio.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port")


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, load: PageLoad) -> None:
        self.ws = ws
        self.load = load
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def _note(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.load.errors.append("console: " + " ".join(str(a.get("value")) for a in args))
        elif method == "Runtime.exceptionThrown":
            self.load.errors.append("exception: " + str(params["exceptionDetails"].get("text")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.load.errors.append("log: " + str(params["entry"].get("text")))
        elif method == "Network.requestWillBeSent":
            self.load.requests.append(params["request"]["url"])
        self.events.append(message)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        await self.ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=30)
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._note(message)

    async def wait_for(self, method: str) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            message = await self.ws.receive_json(timeout=30)
            self._note(message)
            if message.get("method") == method:
                return


_BOX = """(() => { const e = document.querySelector(%s); if (!e) return null;
const r = e.getBoundingClientRect();
return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"""


async def _open(url: str, script: str, width: int, detail: str) -> PageLoad:
    assert CHROMIUM is not None
    load = PageLoad()
    with tempfile.TemporaryDirectory(prefix="omnijourney-chromium-") as tmp:
        profile = Path(tmp)
        process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",  # tests may run as root
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = await _devtools_port(profile, process)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
                page = next(t for t in targets if t["type"] == "page")
                async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    session = _Session(ws, load)
                    for domain in ("Runtime", "Log", "Page", "Network"):
                        await session.call(f"{domain}.enable")
                    await session.call("Page.navigate", url=url)
                    await session.wait_for("Page.loadEventFired")
                    evaluated = await session.call(
                        "Runtime.evaluate", expression=script, returnByValue=True
                    )
                    load.facts = evaluated["result"].get("value")
                    metrics = await session.call("Page.getLayoutMetrics")
                    size = metrics["cssContentSize"]
                    shot = await session.call(
                        "Page.captureScreenshot",
                        format="png",
                        captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
                    )
                    load.screenshot = base64.b64decode(shot["data"])
                    box = await session.call(
                        "Runtime.evaluate",
                        expression=_BOX % orjson.dumps(detail).decode(),
                        returnByValue=True,
                    )
                    clip = box["result"].get("value")
                    if clip:
                        shot = await session.call(
                            "Page.captureScreenshot",
                            format="png",
                            captureBeyondViewport=True,
                            clip={**clip, "scale": 1},
                        )
                        load.detail = base64.b64decode(shot["data"])
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return load


def open_page(
    path: Path, script: str = "null", *, detail: str = "body", width: int = 1100
) -> PageLoad:
    """Load a local file in headless Chromium: errors, requests, `script`'s value, screenshots
    of the page and of the element matching the CSS selector `detail`."""
    return asyncio.run(_open(path.resolve().as_uri(), script, width, detail))


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and color in (2, 6), "unexpected PNG format"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows
