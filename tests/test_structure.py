"""The shape of the code: one-way imports, functions a reader can hold in their head, and every
import the README documents importing."""

from __future__ import annotations

import ast
import importlib
import re
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set

import dldfd_hf

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(dldfd_hf.__file__).resolve().parent
MAX_FUNCTION_LINES = 80
# Where the 80-line rule holds: the library, the example scripts, the demo (and the other scripts).
FUNCTION_FOLDERS = ("dldfd_hf", "examples", "demo", "benchmarks", "hub_card")


# --------------------------------------------------------------------------------------------------
# Import graph of dldfd_hf
# --------------------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py")) if "templates" not in p.parts
            or p.name == "__init__.py"}


def _imports(tree: ast.AST) -> Iterator[ast.stmt]:
    """Every import statement, in functions too (a deferred import is still a dependency), except
    those under ``if TYPE_CHECKING:`` (annotations only: never run)."""
    skipped = {id(inner) for node in ast.walk(tree)
               if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
               for stmt in node.body for inner in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
            yield node


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _with_parents(name: str, importer: str, modules: Dict[str, Path]) -> List[str]:
    """``name`` and the subpackages Python runs first to import it, less the packages the importer
    is part of (they are already running; the root package is run first by any import of it)."""
    parts = name.split(".")
    names = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
    if name == "dldfd_hf":
        names.append(name)
    return [n for n in names if n in modules and n != importer and not importer.startswith(n + ".")]


def import_graph() -> Dict[str, Set[str]]:
    modules = _modules()
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        edges: Set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                target = _resolve(name, path.name == "__init__.py", node)
                targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
            for target in targets:
                if target.split(".")[0] == "dldfd_hf":
                    edges.update(_with_parents(target, name, modules))
        graph[name] = edges
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    state: Dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_is_read_from_the_code():
    graph = import_graph()
    assert "dldfd_hf.model_folder" in graph["dldfd_hf.modeling_dldfd"]
    assert "dldfd_hf.media.video" in graph["dldfd_hf.inference.pipelines"]
    # importing dldfd_hf.hub.push from outside runs dldfd_hf/hub/__init__.py first
    assert {"dldfd_hf.hub", "dldfd_hf.hub.push"} <= graph["dldfd_hf.commands.build_ffpp"]
    assert "dldfd_hf.hub" not in graph["dldfd_hf.hub.export"]  # it is part of the package being run


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_package_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def reachable(graph: Dict[str, Set[str]], starts: List[str]) -> Set[str]:
    """Every module that importing ``starts`` imports, directly or through others."""
    seen, todo = set(), list(starts)
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _package(graph: Dict[str, Set[str]], package: str) -> List[str]:
    return [name for name in graph if name == package or name.startswith(package + ".")]


def test_the_modeling_module_never_imports_the_hub_code():
    seen = reachable(import_graph(), ["dldfd_hf.modeling_dldfd"])
    assert not {name for name in seen if name.startswith(("dldfd_hf.hub", "dldfd_hf.inference"))}


def test_media_is_a_layer_below_the_corpus_builders_and_the_detector():
    graph = import_graph()
    assert "dldfd_hf.media.faces" in graph["dldfd_hf.data.build"]
    upper = ("dldfd_hf.data", "dldfd_hf.inference", "dldfd_hf.training", "dldfd_hf.hub", "dldfd_hf.commands")
    media = reachable(graph, _package(graph, "dldfd_hf.media"))
    assert not {name for name in media if name.startswith(upper)}
    data = reachable(graph, _package(graph, "dldfd_hf.data"))
    assert not {name for name in data if name.startswith("dldfd_hf.inference")}


def _imported_at_module_level(path: Path) -> Set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    deferred = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                for inner in ast.walk(node)}
    names: Set[str] = set()
    for node in _imports(tree):
        if id(node) in deferred:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        else:
            names.add(node.module or "")
    return names


def test_mtcnn_is_imported_when_a_detector_is_made_not_with_the_package():
    importers = {name for name, path in _modules().items()
                 if any(m.split(".")[0] == "facenet_pytorch" for m in _imported_at_module_level(path))}
    assert importers == set()
    assert "facenet_pytorch" in (PACKAGE_DIR / "media" / "mtcnn.py").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Function length
# --------------------------------------------------------------------------------------------------
def long_functions(paths: List[Path], limit: int = MAX_FUNCTION_LINES) -> List[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_the_length_check_counts_lines():
    source = "def f():\n" + "    x = 1\n" * 80
    path = ROOT / "tests" / "__init__.py"  # any file of the repo, for relative_to
    tree_path = path.with_name("_long_function_probe.py")
    try:
        tree_path.write_text(source, encoding="utf-8")
        assert long_functions([tree_path]) == ["tests/_long_function_probe.py:1 f (81 lines)"]
        assert long_functions([tree_path], limit=81) == []
    finally:
        tree_path.unlink()


def test_no_function_is_longer_than_80_lines():
    paths = [p for folder in FUNCTION_FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(paths) > 50
    assert long_functions(paths) == []


# --------------------------------------------------------------------------------------------------
# Documented import paths
# --------------------------------------------------------------------------------------------------
def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def readme_import_statements() -> List[str]:
    blocks = re.findall(r"```python\n(.*?)```", _readme(), flags=re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines()
            if re.match(r"\s*(from dldfd_hf\S* import |import dldfd_hf)", line)]


def readme_dotted_names() -> Set[str]:
    return set(re.findall(r"`(dldfd_hf(?:\.[A-Za-z_]\w*)+)", _readme()))


def _resolve_dotted(name: str) -> object:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


def test_the_readme_imports_import_without_a_deprecation_warning():
    statements = readme_import_statements()
    assert "from dldfd_hf.hub.export import export_model" in statements
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        for statement in statements:
            exec(statement, {})


def test_every_dotted_name_in_the_readme_exists():
    names = readme_dotted_names()
    assert "dldfd_hf.inference.loading.load_video_pipeline" in names
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        missing = []
        for name in sorted(names):
            try:
                _resolve_dotted(name)
            except (ImportError, AttributeError) as err:
                missing.append(f"{name}: {err}")
    assert missing == []

