"""The package's shape, checked: every import goes down the floors of docs/architecture.md
(deferred imports inside functions too), no import cycle between its modules, no module over 500
lines, no function body over 100 lines, and `import keras_attn.layers` without the data pipelines.

Imports are read statically (`ast`): `import` / `from ... import` statements of `keras_attn`
modules, those executed at import time (module level, including inside module-level `if`/`try`
blocks) or, with `deferred=True`, every one (inside functions too). A name looked up at run time
(`families.Lazy("keras_attn.demo:_classifier")`) is not an import.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "keras_attn"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _module_level_imports(tree: ast.Module):
    """Import nodes executed when the module is imported (not inside functions or classes)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def _every_import(tree: ast.Module):
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    known = modules()
    graph = {name: set() for name in known}
    read = _every_import if deferred else _module_level_imports
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in read(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            graph[name] |= {t for t in targets if t in known and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state = {}  # 1: on the stack, 2: done

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target, stack)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return None


def test_the_import_graph_reader_sees_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "keras_attn.layers" in graph["keras_attn.models.aligner"] or any(
        t.startswith("keras_attn.layers.") for t in graph["keras_attn.models.aligner"]
    )
    # keras_attn.families.sr imports keras_attn.training.evaluation inside a function only
    assert "keras_attn.training.evaluation" not in graph["keras_attn.families.sr"]
    assert "keras_attn.training.evaluation" in import_graph(deferred=True)["keras_attn.families.sr"]


# The floors of docs/architecture.md, top to bottom: a module imports only from its own floor or
# the floors below, at import time and inside functions alike. `keras_attn/__init__.py` is the
# entrance and may import any.
FLOORS = (
    ("__main__", "cli", "flags", "demo"),
    ("inference",),
    ("pretrained",),
    ("families",),
    ("viz",),
    ("training",),
    ("models",),
    ("data",),
    ("export",),
    ("layers",),
    ("utils", "_io", "version"),
)


def floor(module: str) -> int:
    part = module.split(".")[1]
    return next(i for i, names in enumerate(FLOORS) if part in names)


def test_every_module_has_a_floor_and_imports_only_downwards():
    upward = [
        f"{name} -> {target}"
        for name, targets in import_graph(deferred=True).items()
        if name != "keras_attn"
        for target in targets
        if target != "keras_attn" and floor(target) < floor(name)
    ]
    assert upward == [], "imports up the floors of docs/architecture.md: " + ", ".join(upward)
    drawing = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for names in FLOORS:
        for name in names:
            suffix = "/" if (PACKAGE / name).is_dir() else ".py"
            assert f"keras_attn/{name}{suffix}" in drawing, f"{name} is not drawn"


@pytest.mark.parametrize("deferred", [False, True])
def test_no_import_cycle_inside_the_package(deferred):
    cycle = find_cycle(import_graph(deferred))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_and_function_sizes(name):
    path = modules()[name]
    source = path.read_text()
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines (at most {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            has_docstring = isinstance(body[0], ast.Expr) and isinstance(
                body[0].value, ast.Constant
            )
            first = body[1] if has_docstring and len(body) > 1 else body[0]
            length = node.end_lineno - first.lineno + 1
            assert length <= MAX_FUNCTION_LINES, (
                f"{path.name}:{node.lineno} {node.name}: body of {length} lines "
                f"(at most {MAX_FUNCTION_LINES})"
            )


def test_layers_import_without_the_data_pipelines():
    code = (
        "import sys, keras_attn.layers; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('tensorflow_datasets', 'keras_attn.data'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert result.stdout.strip() == "[]", result.stdout
