"""cl_lib's import graph has no cycle (imports inside functions included), and neither have the build scripts:
loading a chapter's settings must not build models, and a module must be understandable without its users."""
import ast
from pathlib import Path

from cl_lib import config

ROOT = config.ROOT


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str) -> set[str]:
    """The project modules `path` imports, anywhere in the file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            out.add(prefix)
            out |= {f"{prefix}.{a.name}" for a in node.names}
    return out


def graph(files: list[Path]) -> dict[str, set[str]]:
    names = {module_name(p): p for p in files}
    g = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        g[name] = {m for m in imports(path, package) if m in names and m != name}
    return g


def cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_walker_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_cl_lib_has_no_import_cycle():
    g = graph(sorted((ROOT / "cl_lib").rglob("*.py")))
    assert "cl_lib.cost" not in g["cl_lib.config"] and "cl_lib.probes" not in g["cl_lib.features"]
    assert len(g) > 20 and cycle(g) is None, f"import cycle: {' → '.join(cycle(g))}"


def test_scripts_have_no_import_cycle():
    g = graph(sorted((ROOT / "scripts").glob("*.py")))
    assert cycle(g) is None, f"import cycle: {' → '.join(cycle(g))}"
