"""``dldfd synth-ffpp``: an FF++-layout tree of pseudo-fakes made from any folder of real face videos."""

from __future__ import annotations

import argparse
import sys

from ..data.ffpp import COMPRESSIONS, DEFAULT_METHODS, format_table1, index_ffpp
from ..data.synth import SynthError, make_synth_tree
from ..media.files import MediaError


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``dldfd synth-ffpp``."""
    parser.description = (
        "Re-encode real face videos as FF++ originals (H.264 at the CRF of the compression level) "
        "and make fakes <target>_<source> with landmark-aligned face swaps and self-blends, one recipe per "
        "FF++ method folder, plus OUTPUT/splits/{train,val,test}.json. Build a corpus from it with "
        "`dldfd build-ffpp OUTPUT CORPUS --compression C --splits-dir OUTPUT/splits`. Each video should "
        "show one person, different videos different people."
    )
    parser.add_argument("videos_dir", help="folder of real face videos (searched recursively)")
    parser.add_argument("output", help="tree to create (must not exist or be empty)")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="c23", help="raw (lossless), c23 or c40 (default c23)")
    parser.add_argument("--methods", nargs="+", metavar="METHOD", default=list(DEFAULT_METHODS), help="method folders to fill (default: the four FF++ methods)")
    parser.add_argument("--max-frames", type=int, help="cap on frames per original (default: whole segments)")
    parser.add_argument("--segments", type=int, help="cut each clip into this many videos (default: 1, or enough for 3 pairs with < 6 clips)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the self-blend jitters")
    parser.add_argument("--device", default="cpu", help="face detector device")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        tree = make_synth_tree(
            args.videos_dir,
            args.output,
            compression=args.compression,
            methods=args.methods,
            max_frames=args.max_frames,
            segments=args.segments,
            seed=args.seed,
            device=args.device,
            progress=not args.quiet,
        )
    except (SynthError, MediaError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    index = index_ffpp(tree.root, tree.compression, tree.methods, splits_dir=tree.splits_dir)
    print(format_table1(index.counts(), methods=tree.methods))
    for skipped in tree.skipped_clips:
        print(f"  skipped {skipped}", file=sys.stderr)
    print(
        f"tree written to {tree.root}; build a corpus with:\n  dldfd build-ffpp {tree.root} CORPUS "
        f"--compression {tree.compression} --splits-dir {tree.splits_dir}"
    )
    return 0
