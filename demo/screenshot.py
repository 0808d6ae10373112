"""Screenshot of the running demo after a video was processed, taken with headless Chromium.

    python demo/screenshot.py --model MODEL --video CLIP.mp4 [--output demo/screenshot.png] [--frames 16]
                              [--photo PHOTO.jpg]    # also the Image tab, to <output>-image.png

Starts ``demo/app.py`` on a free local port, then a real browser uploads the video, presses
"Analyse video", waits for the verdict and the galleries, and saves a full-page PNG, so a person
can look at the page without opening a browser. A video the browser cannot play (e.g. MPEG-PS
``.mpg``) is re-encoded to H.264 MP4 first, so the page's player shows it.

Needs Chromium (Debian: ``apt-get install -y chromium``) and Playwright's Python package
(``pip install "dldfd-hf[screenshot]"``); Playwright drives the system Chromium (``--chromium``),
it downloads no browser of its own. Not used by the test suite.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from PIL import Image

from dldfd_hf.data.video_writer import write_video
from dldfd_hf.media.video_reader import probe
from dldfd_hf.media.video_stream import iter_frames

APP = Path(__file__).resolve().parent / "app.py"
BROWSER_PLAYABLE = {".mp4", ".webm", ".ogg", ".ogv", ".m4v"}
# Headless Chromium on a machine without network: nothing in the background may try to reach out.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, app: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise RuntimeError(f"the demo exited with status {app.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the demo did not answer at {url} within {timeout:.0f} s")


def browser_playable(video: Path, folder: Path) -> Path:
    """``video`` itself, or an H.264 MP4 copy in ``folder`` when browsers cannot play its container."""
    if video.suffix.lower() in BROWSER_PLAYABLE:
        return video

    copy = folder / f"{video.stem}.mp4"
    write_video(copy, (frame.image for frame in iter_frames(video)), fps=probe(video).fps or 25.0,
                crf=18, container_options={"movflags": "+faststart"})
    return copy


def _finish(page, verdict_id: str, done: str, galleries: str, output: Path, timeout: float) -> str:
    """Wait for the verdict and the galleries' images, save a full-page PNG; returns the verdict text."""
    page.wait_for_function(
        f"() => /{done}|⚠/.test(document.querySelector('#{verdict_id}').innerText)", timeout=timeout * 1000
    )
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{galleries}')].every(img => img.complete && img.naturalWidth > 0)",
        timeout=timeout * 1000,
    )
    page.wait_for_timeout(1500)  # the plot draws after its data arrives
    output.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(output), full_page=True)
    return page.inner_text(f"#{verdict_id}").strip()


def take_screenshots(url: str, video: Path, output: Path, *, photo: Optional[Path], frames: Optional[int],
                     chromium: str, width: int, timeout: float) -> List[Tuple[Path, str]]:
    """In the page at ``url``: upload ``video``, analyse it, save ``output``; then the same for ``photo``
    in the Image tab (to ``<output>-image.png``). Returns ``(png, verdict text)`` pairs."""
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_default_timeout(timeout * 1000)
            page.goto(url, wait_until="networkidle")
            page.set_input_files("#video-input input[type=file]", str(video))
            page.wait_for_selector("#video-input video")  # the upload finished
            if frames is not None:
                box = page.locator("#video-frames input[type=number]")
                box.fill(str(frames))
                box.press("Enter")
            page.click("#video-button")
            verdict = _finish(page, "video-verdict", "voted fake|No face", "#video-gallery img, #video-heatmaps img",
                              output, timeout)
            shots.append((output, verdict))
            if photo is not None:
                page.get_by_role("tab", name="Image").click()
                page.set_input_files("#image-input input[type=file]", str(photo))
                page.wait_for_timeout(1000)  # the upload
                page.click("#image-button")
                image_output = output.with_name(f"{output.stem}-image{output.suffix}")
                verdict = _finish(page, "image-verdict", "scored fake|No face", "#image-heatmaps img",
                                  image_output, timeout)
                shots.append((image_output, verdict))
        finally:
            browser.close()
    return shots


def reduce_colours(png: Path, colours: int) -> None:
    """Rewrite ``png`` with a ``colours``-entry palette: a page of flat UI colours loses next to
    nothing and the file shrinks about fourfold (small enough to keep in git)."""
    with Image.open(png) as image:
        palette = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE)
    palette.save(png, optimize=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="what demo/app.py --model accepts")
    parser.add_argument("--video", required=True, type=Path, help="the video to upload")
    parser.add_argument("--output", type=Path, default=Path("demo/screenshot.png"), help="PNG to write")
    parser.add_argument("--photo", type=Path, default=None,
                        help="also analyse this photo in the Image tab (PNG: <output>-image.png)")
    parser.add_argument("--frames", type=int, default=None, help="frames to sample (the page's default otherwise)")
    parser.add_argument("--colours", type=int, default=256,
                        help="palette size of the saved PNG (256; 0 keeps full colour)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument("--width", type=int, default=1280, help="browser window width (1280)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each step (300)")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        parser.error(f"no Chromium at {args.chromium} (Debian: apt-get install -y chromium)")
    for name, path in (("video", args.video), ("photo", args.photo)):
        if path is not None and not path.is_file():
            parser.error(f"no {name} at {path}")

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="dldfd-screenshot-") as tmp:
        video = browser_playable(args.video.resolve(), Path(tmp))
        app = subprocess.Popen([sys.executable, str(APP), "--model", args.model, "--host", "127.0.0.1",
                                "--port", str(port), "--device", "cpu"])
        try:
            _wait_for_server(url, app, args.timeout)
            shots = take_screenshots(url, video, args.output, photo=args.photo, frames=args.frames,
                                     chromium=args.chromium, width=args.width, timeout=args.timeout)
        finally:
            app.terminate()
            app.wait(timeout=30)
    for png, verdict in shots:
        if args.colours:
            reduce_colours(png, args.colours)
        print(f"{png} ({png.stat().st_size / 1024:.0f} KB): {verdict.splitlines()[0] if verdict else '(no verdict)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
