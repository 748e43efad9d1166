"""Image download against a local HTTP server on 127.0.0.1: good images, stalls, 404, 500-then-200, HTML."""
from __future__ import annotations

import csv
import io
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from elliot_visual.data.download import DownloadOptions, download_images, image_format

FAST = DownloadOptions(workers=4, timeout=0.3, retries=2, backoff=0.01, progress=False)


def image_bytes(fmt: str, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format=fmt)
    return buffer.getvalue()


JPEG, PNG = image_bytes("JPEG"), image_bytes("PNG", (10, 200, 10))


@dataclass
class Server:
    """What the test server counts and how to build its URLs."""

    port: int
    requests: Counter = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture()
def server() -> Iterator[Server]:
    state = Server(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with lock:
                state.requests[self.path] += 1
                seen = state.requests[self.path]
            if self.path.startswith("/good"):
                self._send(200, JPEG, "image/jpeg")
            elif self.path == "/really-a-png.jpg":
                self._send(200, PNG, "image/png")
            elif self.path == "/slow.jpg":
                state.release.wait(5)  # far beyond the client's timeout; released at teardown
                self._send(200, JPEG, "image/jpeg")
            elif self.path == "/flaky.jpg":
                self._send(500, b"try later", "text/plain") if seen == 1 else self._send(200, JPEG, "image/jpeg")
            elif self.path == "/page.jpg":
                self._send(200, b"<html><body>Sorry, no image</body></html>", "text/html")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout); nothing to answer
                pass

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


def read_report(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return {row["item"]: row for row in csv.DictReader(handle, delimiter="\t")}


def test_download_outcomes_follow_each_server_answer(server: Server, tmp_path: Path) -> None:
    urls = {"good": server.url("/good.jpg"), "png": server.url("/really-a-png.jpg"),
            "slow": server.url("/slow.jpg"), "missing": server.url("/missing.jpg"),
            "flaky": server.url("/flaky.jpg"), "page": server.url("/page.jpg")}
    report = download_images(urls, tmp_path / "images", FAST)

    by_item = {r.item: r for r in report.results}
    assert [r.item for r in report.results] == list(urls)
    assert {i: r.status for i, r in by_item.items()} == {
        "good": "downloaded", "png": "downloaded", "slow": "failed", "missing": "failed",
        "flaky": "downloaded", "page": "failed"}
    # the file extension follows the content, not the URL
    assert by_item["good"].path == tmp_path / "images" / "good.jpg"
    assert by_item["png"].path == tmp_path / "images" / "png.png"
    assert image_format(by_item["png"].path.read_bytes()) == "PNG"
    # retries: transient failures (timeout, 500) are retried, permanent ones (404, HTML) are not
    assert server.requests["/slow.jpg"] == 3 and by_item["slow"].attempts == 3
    assert "timed out" in by_item["slow"].error
    assert server.requests["/flaky.jpg"] == 2 and by_item["flaky"].attempts == 2
    assert server.requests["/missing.jpg"] == 1 and "HTTP 404" in by_item["missing"].error
    assert server.requests["/page.jpg"] == 1 and "not an image" in by_item["page"].error
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "flaky.jpg", "good.jpg", "png.png"]

    rows = read_report(tmp_path / "download_report.tsv")
    assert set(rows) == {"slow", "missing", "page"}
    assert rows["missing"]["url"] == urls["missing"] and rows["missing"]["attempts"] == "1"


def test_second_run_skips_valid_files_and_replaces_broken_ones(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff half a jpeg")
    urls = {"a": server.url("/good-a.jpg"), "b": server.url("/good-b.jpg"), "broken": server.url("/good-c.jpg")}

    first = download_images(urls, folder, FAST)
    assert [r.status for r in first.results] == ["downloaded", "downloaded", "downloaded"]
    assert image_format((folder / "broken.jpg").read_bytes()) == "JPEG"

    second = download_images(urls, folder, FAST)
    assert [r.status for r in second.results] == ["present", "present", "present"]
    assert sum(server.requests.values()) == 3  # nothing fetched twice


def test_unreachable_and_non_http_urls_fail_without_raising(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    urls = {"refused": f"http://127.0.0.1:{closed_port}/x.jpg", "local": "file:///etc/hostname",
            "nonsense": "not a url", "../escape": "http://127.0.0.1:1/x.jpg"}
    report = download_images(urls, tmp_path / "images", FAST)

    by_item = {r.item: r for r in report.results}
    assert all(r.status == "failed" for r in report.results)
    assert by_item["refused"].attempts == 3 and "connection error" in by_item["refused"].error
    assert by_item["local"].attempts == 1 and "unsupported URL scheme 'file'" in by_item["local"].error
    assert by_item["nonsense"].attempts == 1
    assert by_item["../escape"].attempts == 0 and "file name" in by_item["../escape"].error
    assert set(read_report(tmp_path / "download_report.tsv")) == set(urls)


def test_options_reject_impossible_values() -> None:
    with pytest.raises(ValueError, match="workers"):
        DownloadOptions(workers=0)
    with pytest.raises(ValueError, match="timeout"):
        DownloadOptions(timeout=0)
