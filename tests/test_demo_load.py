"""The demo under load (issue 21): concurrent gradio_client requests, each answer downloaded whole,
while the cache bound trims constantly. Before the fix ~1 request in 40 lost a file: Gradio rewrote
a gallery image in place (same crop, same content-named path) while another client downloaded it,
and the bound deleted other requests' answers before their clients had fetched them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.demo_app import GRID_CLIP, TWO_PEOPLE, free_port, load_app

gradio_client = pytest.importorskip("gradio_client")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")]

CLIENTS = 8
ROUNDS = 3


def _ask(client, round_index: int, number: int, video: Path, photo: Path) -> list[str]:
    """One request (video or photo, alternating), its output files downloaded; returns their paths."""
    if (round_index + number) % 2:
        outputs = client.predict(gradio_client.handle_file(str(video)), 2, "majority", 0.5, False,
                                 api_name="/analyse_video")
        verdict, _, crops, _, records = outputs
        files = [item["image"] for item in crops] + [records]
    else:
        verdict, boxed, _, _, records = client.predict(gradio_client.handle_file(str(photo)), 0.5, False,
                                                       api_name="/analyse_image")
        files = [boxed, records]
    assert "Unexpected error" not in verdict, verdict
    for name in files:
        assert name and Path(name).stat().st_size > 0, f"{name}: missing or empty (verdict: {verdict[:80]!r})"
    return files


def test_concurrent_clients_get_every_answer_while_the_cache_is_trimmed(
        tiny_model_folder, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    app = load_app()
    # (300 in service) shorter, so that the bound deletes the first answers during the test; still longer
    # than an answer takes from being written to being downloaded on a loaded 0.5-CPU machine (10 s was not).
    app.KEEP_ANSWERS_S = 45
    removed = []
    trim = app.trim_cache
    monkeypatch.setattr(app, "trim_cache", lambda *a, **k: removed.extend(trim(*a, **k)) or [])
    port = free_port()
    demo = app.main(["--model", str(tiny_model_folder), "--host", "127.0.0.1", "--port", str(port),
                     "--device", "cpu", "--max-cache-mb", "0.001", "--concurrency", "2",
                     "--queue-size", str(2 * CLIENTS), "--max-frames", "4"], block=False)
    failures: list[str] = []

    def age_answers() -> None:
        # Between rounds every client has its answers: make them older than the grace, so that the bound
        # deletes them while the next round's requests are written and downloaded, however fast this machine is.
        past = time.time() - 2 * app.KEEP_ANSWERS_S
        for path in (tmp_path / "gradio-cache").rglob("*"):
            if path.is_file():
                os.utime(path, (past, past))

    between_rounds = threading.Barrier(CLIENTS, action=age_answers)

    def user(number: int) -> None:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False,
                                      download_files=str(tmp_path / f"client{number}"))
        for round_index in range(ROUNDS):
            try:
                _ask(client, round_index, number, shared_data / GRID_CLIP, shared_data / TWO_PEOPLE)
            except Exception as error:  # every failure counts, whatever it is
                failures.append(f"client {number}, round {round_index}: {type(error).__name__}: {error}")
            try:
                between_rounds.wait(timeout=600)
            except threading.BrokenBarrierError:
                failures.append(f"client {number}, round {round_index}: another client never finished its round")

    try:
        users = [threading.Thread(target=user, args=(n,)) for n in range(CLIENTS)]
        for thread in users:
            thread.start()
        for thread in users:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in users), "requests still running after 10 minutes"
    finally:
        demo.close()
    assert failures == []
    assert removed, "the cache bound never deleted anything: the test did not exercise it"
