"""Renders the kedro-viz pipeline graph to a PNG with headless Chromium (for the README).

    python scripts/render_viz.py            # kedro viz build, then docs/images/kedro_viz.png
    python scripts/render_viz.py --no-build --pipeline inference --orientation horizontal \
        --width 1800 --height 700 --output docs/images/kedro_viz_inference.png

Runs `kedro viz build` (into build/, git-ignored) unless --no-build, serves build/ on a
loopback port (the page fetches its JSON, which file:// URLs forbid), and points headless
Chromium at a small start page that stores kedro-viz's display settings (light theme,
namespaces expanded, no sidebar or hints) in the page's localStorage, where kedro-viz
reads them, before opening the graph. Needs a Chromium binary (Debian: `apt-get install
chromium`); not run by the tests, since CI has no browser. Nothing leaves the machine:
Chromium's background networking is off, and the page's web fonts fall back offline.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_PAGE = "/render-start.html"
# kedro-viz keeps its settings under this localStorage key (merged into its initial state).
VIZ_SETTINGS = {
    "theme": "light",
    "expandAllPipelines": True,
    "showFeatureHints": False,
    "visible": {
        "code": False,
        "exportModal": False,
        "graph": True,
        "metadataModal": False,
        "miniMap": False,
        "modularPipelineFocusMode": None,
        "settingsModal": False,
        "shareableUrlModal": False,
        "sidebar": False,
        "slicing": True,
        "traceback": False,
    },
}


def find_chromium(explicit: str | None) -> str:
    for name in (explicit, *CHROMIUM_NAMES):
        if name and (path := shutil.which(name)):
            return path
    sys.exit("No Chromium found: install it (apt-get install chromium) or pass --chromium.")


def build_viz(project: Path) -> None:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"], cwd=project, env=env, check=True
    )


def start_page(pipeline: str, orientation: str) -> bytes:
    """HTML that stores the display settings, then opens the graph of `pipeline`."""
    settings = json.dumps(json.dumps({**VIZ_SETTINGS, "orientation": orientation}))
    target = json.dumps(f"/?pid={pipeline}&expandAllPipelines=true")
    return (
        "<!doctype html><script>"
        f"localStorage.setItem('KedroViz', {settings}); location.replace({target});"
        "</script>"
    ).encode()


def serve(folder: Path, pipeline: str, orientation: str) -> http.server.ThreadingHTTPServer:
    """A quiet static file server for `folder` (plus the start page) on a loopback port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != START_PAGE:
                super().do_GET()
                return
            body = start_page(pipeline, orientation)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def screenshot(
    chromium: str, url: str, output: Path, width: int, height: int, wait_ms: int
) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="render_viz_") as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--virtual-time-budget={wait_ms}",
                f"--screenshot={output.resolve()}",
                url,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=180,
        )
    if not output.is_file() or output.stat().st_size == 0:
        sys.exit(f"Chromium wrote no screenshot to {output}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="Kedro project root")
    parser.add_argument("--output", type=Path, default=ROOT / "docs/images/kedro_viz.png")
    parser.add_argument("--pipeline", default="__default__", help="registered pipeline to show")
    parser.add_argument("--orientation", choices=["vertical", "horizontal"], default="vertical")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    parser.add_argument("--wait-ms", type=int, default=20000, help="page time to settle")
    parser.add_argument("--chromium", help="Chromium executable (default: found on PATH)")
    parser.add_argument("--no-build", action="store_true", help="reuse an existing build/")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)
    if not args.no_build:
        build_viz(args.project)
    build = args.project / "build"
    if not (build / "index.html").is_file():
        sys.exit(f"{build} has no kedro-viz build: run without --no-build.")
    server = serve(build, args.pipeline, args.orientation)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{START_PAGE}"
        screenshot(chromium, url, args.output, args.width, args.height, args.wait_ms)
    finally:
        server.shutdown()
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
