"""Headless Chromium for the report tests, driven over the DevTools protocol.

A minimal pure-Python client (the standard library's socket, urllib and json): one
WebSocket to the page target, commands in, events collected. Chromium comes from
Debian (`apt-get install -y chromium`, which `make test-slow` runs when it is missing);
without it the fixture skips with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str:
    """Path of the chromium binary; skips with the fix when there is none (`make test-slow`
    installs it, tests never install packages)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed: `make test-slow` installs it (apt-get install)")


class _WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: text frames, client masking."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        assert url.startswith("ws://"), url
        host_port, _, path = url[len("ws://") :].partition("/")
        host, _, port = host_port.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        header, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in header.split(b"\r\n")[0]:
            raise ConnectionError(header.decode(errors="replace"))

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])
        if len(payload) < 126:
            header.append(0x80 | len(payload))
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0x9, 0xA):  # ping / pong: not used by DevTools
                continue
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


@dataclass
class PageResult:
    """What a page did while loading."""

    images: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    title: str = ""


class Browser:
    """One headless Chromium with a fresh profile; `open` loads a page and checks it."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--window-size=1200,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or len(port_file.read_text().split()) < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self.next_id = 0

    def _page_socket(self) -> _WebSocket:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=30) as r:
            targets = json.load(r)
        page = next(t for t in targets if t["type"] == "page")
        return _WebSocket(page["webSocketDebuggerUrl"])

    def _call(self, ws: _WebSocket, events: list[dict], method: str, **params) -> dict:
        self.next_id += 1
        ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            events.append(message)

    def open(
        self, path: Path, screenshot: Path | None = None, timeout: float = 60.0
    ) -> PageResult:
        ws = self._page_socket()
        events: list[dict] = []
        try:
            for method in ("Page.enable", "Runtime.enable", "Log.enable"):
                self._call(ws, events, method)
            self._call(ws, events, "Page.navigate", url=path.absolute().as_uri())
            deadline = time.monotonic() + timeout
            while not any(e.get("method") == "Page.loadEventFired" for e in events):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} did not finish loading")
                events.append(json.loads(ws.receive()))
            found = self._call(
                ws,
                events,
                "Runtime.evaluate",
                returnByValue=True,
                expression="JSON.stringify({title: document.title, images: "
                "Array.from(document.images).map(i => ({src: i.src, complete: "
                "i.complete, naturalWidth: i.naturalWidth}))})",
            )
            page = json.loads(found["result"]["value"])
            if screenshot is not None:
                size = self._call(ws, events, "Page.getLayoutMetrics")["cssContentSize"]
                shot = self._call(
                    ws,
                    events,
                    "Page.captureScreenshot",
                    format="png",
                    captureBeyondViewport=True,
                    clip={
                        "x": 0,
                        "y": 0,
                        "width": size["width"],
                        "height": size["height"],
                        "scale": 1,
                    },
                )
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
        finally:
            ws.close()
        result = PageResult(images=page["images"], title=page["title"])
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                result.errors.append(
                    " ".join(
                        str(a.get("value", a.get("description"))) for a in params.get("args", [])
                    )
                )
            elif method == "Runtime.exceptionThrown":
                result.errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                result.errors.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium for the session (fresh profile, networking features off)."""
    executable = find_chromium()
    instance = Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield instance
    instance.close()
