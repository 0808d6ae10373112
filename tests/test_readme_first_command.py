"""The README's first command after set-up runs on the repository alone (issue 21).

It is read from README.md (the ``bash`` block after ``<!-- first-command -->``) and run exactly as
written, in a subprocess from the repository root: exit status 0, one row per file of
``examples/media``, and each file's verdict is the one the README shows below it.

When the default model changes, refresh the README's output block with its real output:

    python -m tests.test_readme_first_command --update
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from dldfd_hf._io import atomic_write_text
from dldfd_hf.media.files import media_kind

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
MEDIA = REPO_ROOT / "examples" / "media"
COMMAND_MARKER = "<!-- first-command -->"
OUTPUT_MARKER = "<!-- first-command-output"
# The marker line, the fence, the table, the closing fence: the part --update rewrites.
_OUTPUT_BLOCK = re.compile(r"(" + re.escape(OUTPUT_MARKER) + r"[^\n]*\n```\n)(.*?)(```)", re.S)
MAX_MEDIA_BYTES = 1_500_000


def readme_command(text: str) -> str:
    """The one command of the ``bash`` block after :data:`COMMAND_MARKER`."""
    match = re.search(re.escape(COMMAND_MARKER) + r"\s*```bash\n(.*?)```", text, flags=re.S)
    assert match, f"README.md has no ```bash block after {COMMAND_MARKER}"
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the first-command block must hold one command, got {lines}"
    return lines[0]


def readme_output(text: str) -> str:
    match = _OUTPUT_BLOCK.search(text)
    assert match, f"README.md has no output block after {OUTPUT_MARKER}"
    return match.group(2)


def run_command(command: str) -> subprocess.CompletedProcess:
    """``command`` from the repository root, with this interpreter's scripts (``dldfd``) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(shlex.split(command), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)


def verdicts(table: str) -> Dict[str, Tuple[str, str]]:
    """``{path: (kind, label)}`` of a ``dldfd detect`` table (paths without spaces, as here)."""
    rows: List[List[str]] = [line.split() for line in table.splitlines()[1:] if line.strip()]
    return {row[0]: (row[1], row[2]) for row in rows}


def media_files() -> List[str]:
    return sorted(str(p.relative_to(REPO_ROOT)) for p in MEDIA.iterdir() if media_kind(p) is not None)


def test_example_media_are_small_and_attributed():
    attribution = (MEDIA / "ATTRIBUTION.md").read_text()
    files = media_files()
    assert len(files) >= 3 and any(media_kind(f) == "video" for f in files)
    for name in files:
        assert f"`{Path(name).name}`" in attribution, f"{name} is not credited in examples/media/ATTRIBUTION.md"
    assert sum((REPO_ROOT / f).stat().st_size for f in files) < MAX_MEDIA_BYTES


def test_readme_first_command_runs_on_the_repository_alone():
    text = README.read_text()
    command = readme_command(text)
    assert command.startswith("dldfd detect ") and "../shared" not in command  # nothing outside the repo
    result = run_command(command)
    assert result.returncode == 0, f"{command!r} exited {result.returncode}:\n{result.stderr[-2000:]}"
    got = verdicts(result.stdout)
    assert sorted(got) == media_files(), "every file of examples/media gets one row"
    shown = verdicts(readme_output(text))
    assert got == shown, (
        "the README shows other verdicts than the default model gives now; refresh the block with "
        "`python -m tests.test_readme_first_command --update`"
    )


def update_readme() -> None:
    """Run the README's first command and write its stdout into the README's output block."""
    text = README.read_text()
    result = run_command(readme_command(text))
    if result.returncode != 0:
        raise SystemExit(f"the README's first command failed ({result.returncode}):\n{result.stderr}")
    text = README.read_text()  # again: the run took a while, and only the block is ours to change
    atomic_write_text(README, _OUTPUT_BLOCK.sub(lambda m: m.group(1) + result.stdout + m.group(3), text, count=1))
    print(result.stdout, end="")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit(__doc__)
    update_readme()
