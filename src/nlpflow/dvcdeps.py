"""dvc.yaml's code deps and params, computed from what each stage imports and reads.

For every stage, the project files it depends on are ``stages/<name>.py`` and every project
module it imports, transitively (found by reading the source, imports inside functions
included, ``if TYPE_CHECKING:`` blocks left out since they never run), with the package
``__init__.py`` files Python runs on the way and the data files a module reads
(:data:`PACKAGE_DATA`). Its params are :meth:`~nlpflow.contracts.StageInputs.keys` of its
inputs class in :data:`~nlpflow.contracts.STAGE_INPUTS`.

``nlpflow dvc-deps --check`` names every difference with dvc.yaml and exits 1;
``--write`` rewrites the code entries of ``deps`` (those under ``stages/`` and ``src/``)
and the ``params`` lists, keeping every other dep, their order and dvc.yaml's comments.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError

# Where a dvc.yaml dep counts as project code (the generator owns these entries).
CODE_ROOTS = ("stages/", "src/")
PACKAGE_ROOTS = {"nlpflow": Path("src/nlpflow"), "stages": Path("stages")}
# Non-Python project files a module reads at run time: a dep of every stage importing it.
PACKAGE_DATA = {"src/nlpflow/evaluation/behaviour.py": ["src/nlpflow/evaluation/templates"]}


@dataclass(frozen=True)
class StageContract:
    """What a stage's entry in dvc.yaml must list: code deps and params keys."""

    deps: list[str]
    params: list[str]


def _module_file(root: Path, module: str) -> Path | None:
    """``nlpflow.data.saved`` -> ``src/nlpflow/data/saved.py`` (relative), or None when it
    is not a project module."""
    top, *rest = module.split(".")
    base = PACKAGE_ROOTS.get(top)
    if base is None:
        return None
    path = base.joinpath(*rest)
    if (root / path).is_dir() and (root / path / "__init__.py").is_file():
        return path / "__init__.py"
    if (root / path.with_suffix(".py")).is_file():
        return path.with_suffix(".py")
    return None


def _package_inits(root: Path, module: str) -> list[Path]:
    """The ``__init__.py`` files Python runs to import ``module``."""
    parts = module.split(".")
    found = []
    for i in range(1, len(parts) + 1):
        path = _module_file(root, ".".join(parts[:i]))
        if path is not None and path.name == "__init__.py":
            found.append(path)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.Module, package: str) -> list[str]:
    """Every module an import statement that can run names (``from a import b``: ``a`` and
    ``a.b``, which may be a submodule)."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _module_name(path: Path) -> tuple[str, str]:
    """``src/nlpflow/data/saved.py`` -> (``nlpflow.data.saved``, its package ``nlpflow.data``)."""
    parts = list(path.with_suffix("").parts)
    if parts[0] == "src":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def imported_files(
    root: Path, start: Path, parsed: dict[Path, list[str]] | None = None
) -> set[str]:
    """Project files (posix, relative to ``root``) that running ``start`` can import.

    ``parsed``: a cache of each file's imports, shared between calls on one tree."""
    parsed = {} if parsed is None else parsed
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        name, package = _module_name(path)
        todo.extend(_package_inits(root, name))
        if path not in parsed:
            try:
                tree = ast.parse((root / path).read_text(encoding="utf-8"), filename=str(path))
            except SyntaxError as err:
                raise UserError(
                    f"{path}: cannot be parsed ({err.msg}, line {err.lineno})"
                ) from None
            parsed[path] = _runtime_imports(tree, package)
        for module in parsed[path]:
            found = _module_file(root, module)
            if found is not None:
                todo.append(found)
                todo.extend(_package_inits(root, module))
    files = {p.as_posix() for p in seen}
    for module, data in PACKAGE_DATA.items():
        if module in files:
            files.update(data)
    return files


def expected_contracts(root: Path) -> dict[str, StageContract]:
    """For each stage of :data:`~nlpflow.contracts.STAGE_INPUTS`, its code deps (the stage
    module first, the rest sorted) and its params keys."""
    from nlpflow.contracts import STAGE_INPUTS

    out = {}
    parsed: dict[Path, list[str]] = {}
    for stage, inputs in STAGE_INPUTS.items():
        module = Path("stages") / f"{stage}.py"
        if not (root / module).is_file():
            raise UserError(f"{module} not found: every stage of dvc.yaml needs its module")
        deps = sorted(imported_files(root, module, parsed) - {module.as_posix()})
        out[stage] = StageContract([module.as_posix(), *deps], inputs.keys())
    return out


def _is_code(dep: Any) -> bool:
    return isinstance(dep, str) and dep.startswith(CODE_ROOTS)


def _load(path: Path) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments, order and block scalars are kept
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    with open(path, encoding="utf-8") as fh:
        return yaml, yaml.load(fh)


def drift(root: Path, dvc_yaml: Path | None = None) -> list[str]:
    """Every difference between dvc.yaml and the stages' imports and inputs, one line each;
    empty when they agree."""
    path = dvc_yaml or root / "dvc.yaml"
    _, doc = _load(path)
    stages = doc.get("stages") or {}
    problems = []
    contracts = expected_contracts(root)
    for stage, want in contracts.items():
        entry = stages.get(stage)
        if entry is None:
            problems.append(f"{path.name}: stage '{stage}' is missing")
            continue
        listed = [d for d in entry.get("deps") or [] if _is_code(d)]
        for dep in sorted(set(want.deps) - set(listed)):
            problems.append(f"{stage}: imports {dep} but deps does not list it")
        for dep in sorted(set(listed) - set(want.deps)):
            problems.append(f"{stage}: deps lists {dep} but the stage does not import it")
        params = [p for p in entry.get("params") or [] if isinstance(p, str)]
        for key in sorted(set(want.params) - set(params)):
            problems.append(f"{stage}: reads param {key} but params does not list it")
        for key in sorted(set(params) - set(want.params)):
            problems.append(f"{stage}: params lists {key} but the stage does not read it")
    extra = sorted(set(stages) - set(contracts))
    problems.extend(f"{stage}: a stage with no inputs class (nlpflow.contracts)" for stage in extra)
    return problems


def write(root: Path, dvc_yaml: Path | None = None) -> bool:
    """Rewrite the code deps and params of every stage in dvc.yaml; True when it changed."""
    from io import StringIO

    path = dvc_yaml or root / "dvc.yaml"
    before = path.read_text(encoding="utf-8")
    yaml, doc = _load(path)
    stages = doc.get("stages") or {}
    for stage, want in expected_contracts(root).items():
        entry = stages.get(stage)
        if entry is None:
            raise UserError(f"{path}: stage '{stage}' is missing; add it by hand first")
        deps = entry.get("deps")
        others = [d for d in deps or [] if not _is_code(d)]
        if deps is None:
            entry["deps"] = [*want.deps]
        else:
            deps.clear()  # in place: the list keeps its place and its comments in the file
            deps.extend([*want.deps, *others])
        params = entry.get("params")
        files = [p for p in params or [] if not isinstance(p, str)]  # other params files
        if params is None:
            entry["params"] = [*want.params]
        else:
            params.clear()
            params.extend([*want.params, *files])
    buf = StringIO()
    yaml.dump(doc, buf)
    after = buf.getvalue()
    if after == before:
        return False
    from nlpflow.io import write_text

    write_text(path, after)
    return True
