"""The shape of the code: settings_app's modules import one another without a cycle, and none reaches into
another module's private (underscore) names.

Every import counts, at module level or inside a function: a function-local import only hides a cycle from the
interpreter until the function first runs. The implicit import of a package's `__init__` that any submodule import
triggers is not counted as an edge: it is how Python packages work, not a dependency one module chose.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import settings_app

APP = Path(settings_app.__file__).parent
PACKAGE = "settings_app"


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(), filename=str(path))
        for path in APP.rglob("*.py")
        if "migrations" not in path.parts
    }


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(module: str, tree: ast.Module, known: set[str], is_package: bool) -> Iterator[tuple[str, str | None]]:
    """(module imported, name taken from it) for every import of an app module in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, is_package)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in known:
                    yield submodule, None
                elif source in known:
                    yield source, alias.name


def graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    known = set(modules)
    packages = {name for name in known if (APP.parent / name.replace(".", "/") / "__init__.py").exists()}
    return {
        name: {target for target, _ in imported(name, tree, known, name in packages) if target != name}
        for name, tree in modules.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when the graph is acyclic."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_sees_function_local_and_relative_imports():
    source = "def f():\n    from settings_app.delivery import worker\nfrom . import cap\n"
    tree = ast.parse(source)
    known = {"settings_app.delivery.worker", "settings_app.delivery.cap", "settings_app.delivery.queue"}
    found = set(imported("settings_app.delivery.queue", tree, known, is_package=False))
    assert found == {("settings_app.delivery.worker", None), ("settings_app.delivery.cap", None)}


def test_settings_app_modules_import_each_other_without_a_cycle():
    edges = graph(app_modules())
    assert "settings_app.tasks" in edges["settings_app.delivery.queue"], "the graph misses the queue's imports"
    assert find_cycle(edges) == []


def test_data_flows_one_way_from_queue_to_task_to_round_to_worker_to_connector():
    edges = graph(app_modules())
    order = [
        "settings_app.delivery.queue",
        "settings_app.tasks",
        "settings_app.delivery.rounds",
        "settings_app.delivery.worker",
        "settings_app.delivery.connection",
        "settings_app.mail.transport",
    ]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in edges[upstream], f"{upstream} no longer calls {downstream}"
    for later, earlier in ((b, a) for i, a in enumerate(order) for b in order[i + 1 :]):
        assert earlier not in edges[later], f"{later} imports {earlier}, against the flow"


def _private_uses(tree: ast.Module, module: str, known: set[str], is_package: bool) -> Iterator[str]:
    aliases: dict[str, str] = {}
    for target, name in imported(module, tree, known, is_package):
        if name and name.startswith("_") and not name.startswith("__"):
            yield f"{target}.{name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, is_package)
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not isinstance(node.value, ast.Name):
            continue
        if node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__"):
            yield f"{aliases[node.value.id]}.{node.attr}"


def test_no_module_uses_another_modules_private_names():
    modules = app_modules()
    known = set(modules)
    packages = {name for name in known if (APP.parent / name.replace(".", "/") / "__init__.py").exists()}
    offences = {name: sorted(set(_private_uses(tree, name, known, name in packages))) for name, tree in modules.items()}
    assert {name: uses for name, uses in offences.items() if uses} == {}


def test_the_private_name_check_sees_an_import_and_an_attribute():
    tree = ast.parse(
        "from settings_app.delivery import worker\nfrom settings_app.delivery.cap import _x\nworker._plan(1)\n"
    )
    known = {"settings_app.delivery.worker", "settings_app.delivery.cap", "settings_app.tasks"}
    found = set(_private_uses(tree, "settings_app.tasks", known, is_package=False))
    assert found == {"settings_app.delivery.cap._x", "settings_app.delivery.worker._plan"}
