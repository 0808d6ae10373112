"""Files the package writes out: model and dataset card templates, remote-code shims (package data)."""

from importlib import resources

__all__ = ["template_text"]


def template_text(name: str) -> str:
    """The text of ``dldfd_hf/templates/<name>``; works from an installed wheel as from a checkout."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
