"""FaceForensics++ data: layout and official splits (:mod:`.ffpp`), the corpus builder
(:mod:`.build`, with its settings and work folder in :mod:`.workdir` and finalising in
:mod:`.finalize`), real-footage corpora (:mod:`.faces_corpus`), the paper's protocols
(:mod:`.protocols`), face blending (:mod:`.blending`), synthetic FF++ trees (:mod:`.synth`) and
self-blended images (:mod:`.sbi`).

Only the light, dependency-free layout API is imported here; the builder and synthesis pull in
torch, PyAV and datasets, so import them from their modules.
"""

from .ffpp import (
    COMPRESSIONS,
    DEFAULT_METHODS,
    METHOD_NAMES,
    OPTIONAL_METHODS,
    SPLITS,
    FFPPIndex,
    FFPPLayoutError,
    FFPPVideo,
    SplitFileError,
    Splits,
    format_table1,
    index_ffpp,
    load_splits,
    official_splits_dir,
)

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_METHODS",
    "METHOD_NAMES",
    "OPTIONAL_METHODS",
    "SPLITS",
    "FFPPIndex",
    "FFPPLayoutError",
    "FFPPVideo",
    "SplitFileError",
    "Splits",
    "format_table1",
    "index_ffpp",
    "load_splits",
    "official_splits_dir",
]
