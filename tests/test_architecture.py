"""The package's shape: no import circles, every exception class in errors.py (read from the source, no imports)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "onnxviz"


def _modules() -> dict:
    """Dotted module name -> parsed source, for every module of onnxviz."""
    out = {}
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = (f, ast.parse(f.read_text(encoding="utf-8")))
    return out


def import_graph(mods: dict) -> dict:
    """Module -> the onnxviz modules it imports anywhere (lazy imports and TYPE_CHECKING blocks included),
    plus the packages above each (importing a.b.c runs a/__init__ and a/b/__init__ first)."""
    graph = {}
    for name, (path, tree) in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for dep in list(deps):
            parts = dep.split(".")
            deps.update(".".join(parts[:i]) for i in range(1, len(parts)))
        graph[name] = {d for d in deps if d in mods and d not in own}
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_onnxviz():
    mods = _modules()
    graph = import_graph(mods)
    assert "onnxviz.optvis.forward" in graph["onnxviz.attribution.input"]  # the graph sees real edges
    assert cycles(graph) == []


def test_every_exception_class_lives_in_errors():
    mods = _modules()
    defined = {}
    for name, (_, tree) in mods.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    defined[node.name] = name
    assert defined and set(defined.values()) == {"onnxviz.errors"}, defined


def _protocol_members() -> set:
    from onnxviz.protocols import VisionModel

    return set(VisionModel.__annotations__) | {n for n, v in vars(VisionModel).items()
                                                if callable(v) and not n.startswith("_")}


def test_vision_model_protocol_declares_what_the_engines_use():
    """Every ``model.X`` that optvis, attribution, mining, engines, runs and the site read is on the protocol."""
    used = {}
    for name, (path, tree) in _modules().items():
        if name.count(".") == 0 or name.split(".")[1] not in ("optvis", "attribution", "mining", "engines", "runs", "site"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                v = node.value
                if (isinstance(v, ast.Name) and v.id == "model") or (
                        isinstance(v, ast.Attribute) and v.attr == "model" and isinstance(v.value, ast.Name)
                        and v.value.id == "self"):
                    used.setdefault(node.attr, set()).add(name)
    assert {"torch_view", "input_rule", "stats_runner", "load_images"} <= set(used)  # the scan sees them
    missing = {attr: sorted(where) for attr, where in used.items() if attr not in _protocol_members()}
    assert missing == {}


def test_a_loaded_model_is_a_vision_model(digits_onnx):
    import onnxviz
    from onnxviz.protocols import VisionModel

    m = onnxviz.load(digits_onnx)
    assert isinstance(m, VisionModel)
    assert all(hasattr(m, member) for member in _protocol_members())
