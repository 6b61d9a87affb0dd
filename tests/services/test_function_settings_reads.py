"""Every setting a function's code can read is a setting of that function's class (services/core/settings.py).

On AWS Lambda `get_settings()` returns the running function's own class (ApiSettings, AnalyzerSettings, ...),
so a read of a setting outside it is an AttributeError. This test finds those reads before a deploy does,
by reading the code, not by running it:

1. What can run. Starting from the function's handler (services/catalog.py) and the work classes of its
   pipeline stages (which the stage runner imports by name), follow the `services.*` imports, including
   those inside functions. A module's body runs when it is imported; a function or method (at any depth)
   is counted when its name is used anywhere in what is counted (called, passed, referenced: by name
   only, so an over-approximation), or it is decorated (a registration: routes, hooks, validators), or
   it is a dunder method, or its module is loaded by a loader below. Lambdas and class bodies belong to
   the code around them.
2. What is read. An attribute of a settings object: `settings.X`, `<anything>.settings.X` (e.g.
   `self.settings.X`), `get_settings().X`, `settings_for(...).X`, `<one of those>.model_copy(...).X`.
   Settings held under any other name would hide its reads, so these are errors: a parameter or a variable
   annotated with a settings class (or `SettingsDep`) that is not called `settings`; any settings
   expression (those above, and `a or b` / `a if c else b` of them) assigned to another name or
   attribute; settings passed as a keyword other than `settings=`, with `*`/`**`, to a callee without a
   name, or by position where the callee's parameter (every definition of that name read, imports `as`
   followed) is not `settings`; a lambda's `settings` parameter; iterating over settings; `getattr` on a
   settings object.
3. What loads code out of an import statement's sight (`importlib.import_module`, `__import__`, Alembic's
   `script_location`) must be listed in LOADERS with what it loads; anything else is an error.

Each read must be a field, property or method of the function's class.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import services
from services import catalog
from services.core import settings as settings_module
from services.core.settings import FUNCTION_SETTINGS

SERVICES = Path(services.__file__).resolve().parent
MIGRATIONS = "services.core.migrations"


def _stage_works(function: str) -> list[str]:
    return [stage.work.rsplit(".", 1)[0] for stage in catalog.STAGES if stage.function == function]


def _preloaded(function: str) -> list[str]:
    """What the function's handler module asks coldstart.preload to import (string literals only: anything
    else could load code this walk does not see)."""
    handler = catalog.function(function).handler.rsplit(".", 1)[0]
    tree = ast.parse((SERVICES.parent / (handler.replace(".", "/") + ".py")).read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "preload":
            for arg in node.args:
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    raise AssertionError(f"{handler}: preload of {ast.dump(arg)}: name the modules as strings")
                names.append(arg.value)
    return names


def _migration_modules(function: str) -> list[str]:
    folder = SERVICES / "core" / "migrations"
    return [MIGRATIONS + "." + ".".join(p.relative_to(folder).with_suffix("").parts) for p in folder.rglob("*.py")
            if p.name != "__init__.py"]


# Modules that load code by name or path, and what they load (for the function being checked).
LOADERS: dict[str, Callable[[str], list[str]]] = {
    # run_event: importlib.import_module(stage.work) of the function's own stages (catalog.STAGES)
    "services.core.stage_runner": _stage_works,
    # preload: importlib.import_module of the modules the function's handler names (a captured init)
    "services.core.coldstart": _preloaded,
    # Alembic loads env.py and every revision under script_location; it calls their functions itself
    MIGRATIONS: _migration_modules,
}
LOADED_WHOLE = {MIGRATIONS}  # every function of what these load counts (the loader calls them)

SETTINGS_CLASSES = {
    cls.__name__
    for cls in vars(settings_module).values()
    if isinstance(cls, type) and issubclass(cls, settings_module._Base)
} | {"SettingsDep", "ProgramSettings", "BaseSettings"}
SETTINGS_FACTORIES = {"get_settings", "settings_for"}
# Positional parameter names of every function and class (its __init__ without self) read so far, by name.
SIGNATURES: dict[str, set[tuple[str, ...]]] = {}
ALIASES: dict[str, set[str]] = {}  # a name imported `as` another -> the names it stands for
DYNAMIC_CALLS = {"import_module", "__import__", "run_path", "run_module", "spec_from_file_location"}


@dataclass(eq=False)
class Unit:
    """A module's body or one function's body."""

    module: str
    name: str | None
    parent: Unit | None
    always: bool = False  # decorated or a dunder method
    refs: set[str] = field(default_factory=set)
    imports: set[str] = field(default_factory=set)
    reads: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loads: list[int] = field(default_factory=list)  # lines that load code dynamically
    # settings handed on by position: (callee's name, argument index, line); the callee's parameter there
    # must be called `settings` (checked in walk(), which knows every signature)
    passes: list[tuple[str, int, int]] = field(default_factory=list)


def module_file(name: str) -> Path | None:
    if name != "services" and not name.startswith("services."):
        return None
    base = SERVICES.parent.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_settings_annotation(node: ast.AST | None) -> bool:
    if node is None:
        return False
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _is_settings_annotation(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_settings_annotation(node.left) or _is_settings_annotation(node.right)
    if isinstance(node, ast.Subscript) and _name(node.value) in {"Optional", "Annotated"}:
        inner = node.slice.elts[0] if isinstance(node.slice, ast.Tuple) else node.slice
        return _is_settings_annotation(inner)
    return _name(node) in SETTINGS_CLASSES


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def is_settings_expr(node: ast.AST) -> bool:
    if isinstance(node, ast.BoolOp):  # `settings or get_settings()`
        return any(is_settings_expr(value) for value in node.values)
    if isinstance(node, ast.IfExp):
        return is_settings_expr(node.body) or is_settings_expr(node.orelse)
    if isinstance(node, ast.Name):
        return node.id == "settings"
    if isinstance(node, ast.Attribute):
        return node.attr == "settings"
    if isinstance(node, ast.Call):
        if _name(node.func) in SETTINGS_FACTORIES:
            return True
        return (isinstance(node.func, ast.Attribute) and node.func.attr == "model_copy"
                and is_settings_expr(node.func.value))
    return False


def _settings_target_ok(target: ast.AST) -> bool:
    return (isinstance(target, ast.Name) and target.id == "settings") or (
        isinstance(target, ast.Attribute) and target.attr == "settings")


class _Reader(ast.NodeVisitor):
    def __init__(self, module: str, package: str):
        self.module, self.package = module, package
        self.body = Unit(module, None, None)
        self.units = [self.body]
        self.unit = self.body
        self.classes: list[str] = []

    def _error(self, node: ast.AST, what: str) -> None:
        self.unit.errors.append(f"{self.module}:{getattr(node, 'lineno', '?')}: {what}")

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        positional = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]
        SIGNATURES.setdefault(node.name, set()).add(tuple(positional))
        if node.name == "__init__" and self.classes:  # `Storage(settings)` calls Storage.__init__
            SIGNATURES.setdefault(self.classes[-1], set()).add(tuple(positional[1:]))
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.visit(expr)
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for arg in [*arguments, node.args.vararg, node.args.kwarg]:
            if arg is None:
                continue
            if arg.annotation is not None:
                self.visit(arg.annotation)  # FastAPI evaluates annotations (Depends(...))
            if _is_settings_annotation(arg.annotation) and arg.arg != "settings":
                self._error(arg, f"settings parameter {arg.arg!r} of {node.name}() is not called `settings`")
        dunder = node.name.startswith("__") and node.name.endswith("__")
        unit = Unit(self.module, node.name, self.unit, always=bool(node.decorator_list) or dunder)
        self.units.append(unit)
        outer, self.unit = self.unit, unit
        for statement in node.body:
            self.visit(statement)
        self.unit = outer

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def visit_Name(self, node: ast.Name) -> None:
        self.unit.refs.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.unit.refs.add(node.attr)
        if is_settings_expr(node.value):
            self.unit.reads.append((node.attr, node.lineno))
        self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        called = _name(node.func)
        if called in DYNAMIC_CALLS:
            self.unit.loads.append(node.lineno)
        if called == "getattr" and node.args and is_settings_expr(node.args[0]):
            self._error(node, "getattr() on a settings object: its reads cannot be checked")
        for keyword in node.keywords:
            if keyword.arg != "settings" and is_settings_expr(keyword.value):
                self._error(node, f"settings passed as {keyword.arg or '**'}= to {ast.unparse(node.func)}")
        for index, argument in enumerate(node.args):
            if isinstance(argument, ast.Starred) and is_settings_expr(argument.value):
                self._error(node, f"settings passed with * to {ast.unparse(node.func)}")
            elif is_settings_expr(argument):
                if called is None:
                    self._error(node, f"settings passed to {ast.unparse(node.func)}, whose name is unknown")
                else:
                    self.unit.passes.append((called, index, node.lineno))
        self.generic_visit(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            if arg.arg != "settings":
                continue
            self._error(node, "a lambda's settings parameter: its reads are not followed")
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        if isinstance(node.iter, ast.Tuple | ast.List) and any(is_settings_expr(e) for e in node.iter.elts):
            self._error(node, "settings iterated over under another name")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if node.value == "script_location":
            self.unit.loads.append(node.lineno)

    def _assigned(self, node: ast.AST, targets: Iterable[ast.AST], value: ast.AST | None) -> None:
        if value is not None and is_settings_expr(value):
            for target in targets:
                if not _settings_target_ok(target):
                    self._error(node, f"settings assigned to {ast.unparse(target)!r}, not to `settings`")

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assigned(node, node.targets, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assigned(node, [node.target], node.value)
        if _is_settings_annotation(node.annotation) and not _settings_target_ok(node.target):
            self._error(node, f"{ast.unparse(node.target)!r} is annotated as settings but not called `settings`")
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._assigned(node, [node.target], node.value)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            self.unit.imports.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
            self.unit.refs.add(alias.asname or parts[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.asname:  # `from services.core.aws import client as aws_client`: calls name the alias
                ALIASES.setdefault(alias.asname, set()).add(alias.name)
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        parts = base.split(".")
        self.unit.imports.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        for alias in node.names:
            self.unit.imports.add(f"{base}.{alias.name}")  # kept only when it is a module
            self.unit.refs.update({alias.name, alias.asname or alias.name})


def read_source(module: str, source: str, is_package: bool = False) -> list[Unit]:
    package = module if is_package else module.rpartition(".")[0]
    reader = _Reader(module, package)
    reader.visit(ast.parse(source))
    return reader.units


@dataclass
class Walk:
    modules: set[str]
    units: list[Unit]  # the units that can run
    reads: dict[str, list[str]]  # attribute -> where
    errors: list[str]


def walk(function: str) -> Walk:
    fn = catalog.function(function)
    roots = [fn.module, *_stage_works(function)]
    names = {fn.attribute, *(s.work.rsplit(".", 1)[1] for s in catalog.STAGES if s.function == function)}
    parsed: dict[str, list[Unit]] = {}
    modules: set[str] = set()
    whole: set[str] = set()
    errors: list[str] = []
    pending = list(roots)
    live: set[int] = set()
    while True:
        while pending:
            module = pending.pop()
            path = module_file(module)
            if path is None or module in modules:
                continue
            modules.add(module)
            parsed[module] = read_source(module, path.read_text(), path.name == "__init__.py")
        changed = False
        for module in sorted(modules):
            for unit in parsed[module]:
                if id(unit) in live:
                    continue
                parent_live = unit.parent is None or id(unit.parent) in live
                if parent_live and (unit.name is None or unit.always or unit.name in names
                                    or any(module == w or module.startswith(w + ".") for w in whole)):
                    live.add(id(unit))
                    changed = True
                    names |= unit.refs
                    pending.extend(m for m in unit.imports if m not in modules)
                    if unit.loads:
                        loader = LOADERS.get(module)
                        if loader is None:
                            errors.append(f"{module}:{unit.loads}: loads code dynamically; say what in LOADERS")
                        else:
                            loaded = loader(function)
                            pending.extend(loaded)
                            if module in LOADED_WHOLE:
                                whole.add(module)
        if not changed and not pending:
            break
    units = [u for m in modules for u in parsed[m] if id(u) in live]
    reads: dict[str, list[str]] = {}
    for unit in units:
        errors.extend(unit.errors)
        errors.extend(positional_passes(unit))
        for attribute, line in unit.reads:
            reads.setdefault(attribute, []).append(f"{unit.module}:{line}")
    return Walk(modules, units, reads, errors)


def positional_passes(unit: Unit) -> list[str]:
    """Where settings go by position, the parameter must be `settings` in every definition of that name
    read so far (methods are known by name only); a callee not read at all is an error."""
    errors = []
    for callee, index, line in unit.passes:
        shapes = set().union(*(SIGNATURES.get(name, set()) for name in {callee, *ALIASES.get(callee, ())}))
        if self_method(callee, shapes):
            shapes = {shape[1:] for shape in shapes}
        if not shapes or any(len(shape) <= index or shape[index] != "settings" for shape in shapes):
            errors.append(f"{unit.module}:{line}: settings passed by position to {callee}(), whose "
                          f"parameter there is not `settings` (or was not read): pass settings=...")
    return errors


def self_method(callee: str, shapes: set[tuple[str, ...]]) -> bool:
    """A method called through its object (`self.x(settings)`): its first parameter is the object."""
    return bool(shapes) and all(shape[:1] in {("self",), ("cls",)} for shape in shapes)


def has_setting(cls: type, attribute: str) -> bool:
    return attribute in cls.model_fields or hasattr(cls, attribute)


FUNCTIONS = [f.name for f in catalog.FUNCTIONS]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_setting_a_function_reads_is_in_its_class(function):
    cls = FUNCTION_SETTINGS[function]
    found = walk(function)
    assert found.errors == []
    outside = {attribute: where for attribute, where in found.reads.items() if not has_setting(cls, attribute)}
    assert outside == {}, f"{function} reads settings that {cls.__name__} does not have"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_walk_sees_each_functions_code(function):
    """Not vacuous: the walk reaches the handler, the observability (every function reads its metrics
    namespace through it) and the database settings (every function has the database)."""
    found = walk(function)
    assert catalog.function(function).module in found.modules
    assert "metrics_namespace" in found.reads
    assert {"database_url", "database_secret_arn"} <= set(found.reads), sorted(found.reads)


def test_the_pipeline_stages_logic_is_walked_only_for_its_own_function():
    assert "services.analyzer.logic" in walk("analyzer").modules
    assert "services.analyzer.logic" not in walk("embedder").modules
    migrate = walk("migrate")
    assert {f"{MIGRATIONS}.env", f"{MIGRATIONS}.versions.0001_initial"} <= migrate.modules
    assert "embedding_dimension" in migrate.reads  # the initial revision's vector column


@pytest.mark.parametrize(
    "source, error",
    [
        ("def f(cfg: Settings):\n    return cfg.bucket\n", "settings parameter 'cfg' of f()"),
        ("def f(cfg: 'ApiSettings | None' = None):\n    pass\n", "settings parameter 'cfg' of f()"),
        ("def f():\n    s = get_settings()\n    return s.bucket\n", "settings assigned to 's'"),
        ("def f(settings):\n    c = settings.model_copy(update={})\n", "settings assigned to 'c'"),
        ("def f(settings):\n    return getattr(settings, 'bucket')\n", "getattr() on a settings object"),
        ("class A:\n    conf: Settings\n", "'conf' is annotated as settings"),
        ("def f(settings):\n    s = settings\n    return s.bucket\n", "settings assigned to 's'"),
        ("class A:\n    def __init__(self, settings):\n        self._settings = settings\n",
         "settings assigned to 'self._settings'"),
        ("def f(cfg=None):\n    cfg = cfg or get_settings()\n", "settings assigned to 'cfg'"),
        ("def f(c):\n    x = get_settings() if c else None\n", "settings assigned to 'x'"),
        ("def f(settings):\n    g(cfg=settings)\n", "settings passed as cfg= to g"),
        ("def f(settings):\n    g(**settings)\n", "settings passed as **= to g"),
        ("def f(settings):\n    g(*settings)\n", "settings passed with * to g"),
        ("def f(settings):\n    handlers[0](settings)\n", "whose name is unknown"),
        ("def f():\n    return lambda settings: settings.bucket\n", "a lambda's settings parameter"),
        ("def f(settings):\n    for s in (settings,):\n        pass\n", "iterated over under another name"),
    ],
)
def test_settings_under_another_name_are_refused(source, error):
    errors = [e for unit in read_source("services.example", source) for e in unit.errors]
    assert len(errors) == 1 and error in errors[0], errors


def test_settings_passed_by_position_must_land_in_a_settings_parameter():
    source = (
        "def takes(settings, key):\n    return settings.bucket\n"
        "def other(cfg):\n    return cfg.bucket\n"
        "class Box:\n    def __init__(self, settings):\n        self.settings = settings\n"
        "    def use(self, settings):\n        pass\n"
        "def f(settings):\n"
        "    takes(settings, 1)\n    Box(settings)\n    Box(settings).use(settings)\n"
        "    other(settings)\n    unseen(settings)\n    takes(1, settings)\n"
    )
    units = read_source("services.example_positional", source)
    errors = [e for unit in units for e in positional_passes(unit)]
    assert [e.split(" to ")[1].split("(")[0] for e in errors] == ["other", "unseen", "takes"], errors


def test_the_reads_it_recognises():
    source = (
        "def f(settings: Settings | None = None):\n"
        "    settings = settings or get_settings()\n"
        "    return settings.bucket, self.settings.event_bus, get_settings().aws_region,\\\n"
        "        settings_for('api').metrics_namespace, settings.model_copy(update={}).page_size_max\n"
    )
    (body, f) = read_source("services.example", source)
    assert body.reads == [] and f.errors == []
    assert sorted(attribute for attribute, _ in f.reads) == [
        "aws_region", "bucket", "event_bus", "metrics_namespace", "model_copy", "page_size_max"
    ]


def test_code_loaded_out_of_an_import_statements_sight_is_refused_unless_listed(monkeypatch):
    (body,) = read_source("services.example", "import importlib\nimportlib.import_module(name)\n")
    assert body.loads == [2]
    monkeypatch.delitem(LOADERS, "services.core.stage_runner")
    assert any(e.startswith("services.core.stage_runner:") for e in walk("analyzer").errors)
