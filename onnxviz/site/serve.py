"""A small static file server for a built site (``onnxviz serve``); any web server works too.

It binds 127.0.0.1 unless told otherwise and serves only files inside the site folder (no directory
listings, no ``..``, no symlinks leading out), so serving a site never exposes the rest of the disk.
"""
from __future__ import annotations

import functools
import http.server
from pathlib import Path

from ..paths import inside


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".css": "text/css", ".html": "text/html; charset=utf-8"}

    def end_headers(self):
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def translate_path(self, path):
        """The file for a URL path, only inside the site folder: ``..`` segments are dropped (the base
        class) and a symlink that leads out of the folder is answered 404, as if absent."""
        local = super().translate_path(path)
        root = Path(self.directory)
        return local if inside(Path(local), root) else str(root / ".onnxviz-outside-the-site")

    def list_directory(self, path):  # no directory listings
        self.send_error(404, "Not found")
        return None

    def log_message(self, format, *args):
        if not getattr(self.server, "quiet", False):
            super().log_message(format, *args)


def make_server(directory, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False):
    """A ThreadingHTTPServer serving ``directory`` (port 0 picks a free port: ``server.server_port``)."""
    directory = Path(directory).resolve()
    if not (directory / "index.html").is_file():
        raise FileNotFoundError(f"{directory} has no index.html (build it with `onnxviz site`)")
    handler = functools.partial(_Handler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.quiet = quiet
    server.daemon_threads = True
    return server


def serve(directory, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``directory`` until interrupted."""
    server = make_server(directory, host, port)
    print(f"serving {Path(directory).resolve()} at http://{host}:{server.server_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
