"""Build Hugging Face Hub cache entries by hand, so Hub ids load offline exactly as after a download."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Mapping, Union

FileSource = Union[str, Path, bytes]


class LocalHubCache:
    """``$HF_HOME/hub/<type>s--ORG--NAME/{refs/main, snapshots/<sha>/...}`` as huggingface_hub writes it."""

    def __init__(self, hub_dir: Path) -> None:
        self.hub_dir = Path(hub_dir)

    def add(self, repo_id: str, files: Mapping[str, FileSource], repo_type: str = "model") -> Path:
        """Place ``files`` (name -> path or bytes) as the ``main`` snapshot of ``repo_id``; returns it."""
        digest = hashlib.sha1()
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(_read(files[name]))
        revision = digest.hexdigest()
        repo_dir = self.hub_dir / f"{repo_type}s--{repo_id.replace('/', '--')}"
        snapshot = repo_dir / "snapshots" / revision
        if snapshot.exists():
            shutil.rmtree(snapshot)
        snapshot.mkdir(parents=True)
        for name, source in files.items():
            target = snapshot / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_read(source))
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(revision)
        return snapshot

    def add_folder(self, repo_id: str, folder: Union[str, Path], repo_type: str = "model") -> Path:
        folder = Path(folder)
        files = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
        return self.add(repo_id, files, repo_type=repo_type)


def _read(source: FileSource) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()
