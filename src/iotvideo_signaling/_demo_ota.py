"""The demo's firmware server: HTTPS on loopback with a throwaway CA, serving a simulated image.

Used only by ``iotvideo-signaling demo``. The certificate comes from ``trustme`` (installed with
the ``server`` extra); without it the demo skips its upgrade step.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from ._simfirmware import make_image

__all__ = ["DemoFirmware", "firmware_server"]

log = logging.getLogger(__name__)


class DemoFirmware(NamedTuple):
    """Where the demo's image is served, and what the upgrade request must say about it."""

    url: str
    md5: str
    size: int
    version: str
    ca_file: str


@contextlib.contextmanager
def firmware_server(directory: Path, version: str, size: int) -> Iterator[DemoFirmware | None]:
    """Serve a simulated image of ``version`` over HTTPS on 127.0.0.1; None without trustme."""
    try:
        import trustme  # noqa: PLC0415 - optional: the server extra
    except ImportError:
        log.warning("trustme is not installed: the demo skips its upgrade step")
        yield None
        return
    image = directory / "firmware.bin"
    md5 = make_image(image, version, size)
    body = image.read_bytes()
    ca = trustme.CA()
    ca_file = directory / "demo-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/firmware.bin":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("demo firmware server: " + format, *args)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/firmware.bin?sign=demo&expires=0"
        yield DemoFirmware(url, md5, size, version, str(ca_file))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
