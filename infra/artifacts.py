"""Build what a Lambda slot runs: a deterministic zip, or the context of a container image.

Both hold the `services` package plus the function's dependency group (services/catalog.py)
installed for the Lambda platform, never for this machine, from the group's hash-locked
requirements (infra/locks/<group>.txt, made by infra/locks.py): the zip and the image of one
commit install the same files. They are built when the program runs
(before any resource is registered), not inside an `apply`, so `pulumi preview` shows the real
`source_code_hash` and a failed build stops the program with a plain error.

Dependencies are cached per (lock, platform) under .collections/build/deps, so a second
`pulumi up` with an unchanged lock installs nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra import locks
from services import catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / ".collections" / "build"
SOURCE_PACKAGE = REPO_ROOT / "services"
LAMBDA_PYTHON = locks.LAMBDA_PYTHON  # one fact: the locks, the pip options, the base image, the runtime
BASE_IMAGE = f"public.ecr.aws/lambda/python:{LAMBDA_PYTHON}"
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
DOCKER_PLATFORMS = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}

# Lambda's deployment package limits for zip archives.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

# Not shipped: the local runtime (moto, embedded PostgreSQL), the browser app (services/web, deployed
# to its own bucket by infra/components/web.py, so an app change publishes no function version) and
# stray bytecode of this machine's Python. Bytecode is shipped only when compiled by the runtime's own
# Python (see find_compiler).
EXCLUDED_PARTS = {"__pycache__", "local", "web"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same inputs, same bytes, same hash

Installer = Callable[[Path, str, Path], None]  # (lock file, pip platform, target folder)


class ArtifactError(RuntimeError):
    """The artifact cannot be built or breaks one of Lambda's limits."""


def pip_options(platform: str, python_version: str = LAMBDA_PYTHON) -> tuple[str, ...]:
    """The pip options of both builds (zip here, image in its Dockerfile), so both pick the same
    wheels: Lambda's interpreter and platform tags, wheels only, each file's hash checked against the lock."""
    return ("--platform", platform, "--python-version", python_version, "--implementation", "cp",
            "--only-binary=:all:", "--require-hashes")


def pip_install(lock: Path, platform: str, target: Path, python_version: str = LAMBDA_PYTHON) -> None:
    """Install the lock's wheels for Lambda's Python and CPU into `target` (no local compiling).

    `python_version` other than Lambda's is for the cold-start benchmark, built for this machine."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        *pip_options(platform, python_version), "--target", str(target), "-r", str(lock),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ArtifactError(f"pip could not install {lock.name} for {platform}:\n{result.stderr}")


_installer: Installer = pip_install


@contextmanager
def use_installer(installer: Installer) -> Iterator[None]:
    """Swap the dependency installer (tests run the program without reaching PyPI every time)."""
    global _installer
    previous, _installer = _installer, installer
    try:
        yield
    finally:
        _installer = previous


@dataclass(frozen=True)
class ZipArtifact:
    service: str
    path: Path
    source_code_hash: str  # base64 sha256 of the archive, as Lambda reports CodeSha256
    zipped_bytes: int
    unzipped_bytes: int


@dataclass(frozen=True)
class ImageContext:
    service: str
    path: Path  # the docker build context: Dockerfile, requirements.txt, services/
    dockerfile: Path
    platform: str  # exactly one platform: Lambda rejects multi-platform image indexes


def requirements_of(fn: catalog.Function) -> tuple[str, ...]:
    try:
        return catalog.DEPENDENCY_GROUPS[fn.dependency_group]
    except KeyError:
        known = ", ".join(sorted(catalog.DEPENDENCY_GROUPS))
        raise ArtifactError(f"{fn.name}: unknown dependency group {fn.dependency_group!r} ({known})") from None


def lock_of(fn: catalog.Function, architecture: str | None = None) -> Path:
    """The function's hash-locked dependency set; refused when it lags behind the catalog, or when
    it was resolved for another platform (environment markers such as platform_machine can pick
    other packages, so an aarch64 lock is not an x86_64 one)."""
    requirements_of(fn)
    architecture = architecture or fn.architecture
    if PLATFORMS.get(architecture) != locks.PIP_PLATFORM:
        raise ArtifactError(f"{fn.name}: the dependency locks are resolved for {locks.PIP_PLATFORM} only, not "
                            f"{architecture!r}; lock that platform in infra/locks.py first")
    try:
        return locks.check(fn.dependency_group)
    except locks.LockError as error:
        raise ArtifactError(f"{fn.name}: {error}") from None


def _source_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_dir() or EXCLUDED_PARTS & set(relative.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        files.append(path)
    return files


def dependencies_dir(
    lock: Path, architecture: str, build_dir: Path | None = None, *, python: str = LAMBDA_PYTHON
) -> Path:
    """The installed dependency set, built once per (lock content, platform, Python).

    `python` other than Lambda's is for the benchmark, which builds for this machine's Python."""
    build_dir = build_dir or BUILD_DIR
    platform = PLATFORMS[architecture]
    key = hashlib.sha256("\n".join([platform, python, lock.read_text()]).encode()).hexdigest()[:16]
    target = build_dir / "deps" / f"{architecture}-{key}"
    if (target / ".complete").exists():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if python == LAMBDA_PYTHON:
        _installer(lock, platform, staging)
    else:
        _installer(lock, platform, staging, python_version=python)  # type: ignore[call-arg]
    (staging / ".complete").write_text(f"{lock.name}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # a half-finished install never looks complete
    return target


# --- bytecode ---------------------------------------------------------------------------------
# /var/task is read-only on Lambda: without .pyc of the runtime's exact Python, every cold start
# compiles every imported module from source (2-3x the import time: make bench, bench_coldstart). Only an
# interpreter of that exact version may compile them: a .pyc of another version is ignored at
# best (a different cache tag) and never what we meant to ship.
BUILD_PYTHON_ENV = "COLLECTIONS_BUILD_PYTHON"  # an interpreter of Lambda's Python, when not on PATH
TASK_ROOT = "/var/task"  # where Lambda extracts the zip: the file names tracebacks show
_COMPILE = """
import importlib.util, json, py_compile, sys
out, written = sys.argv[1], []
for source, name in json.load(sys.stdin):
    cfile = importlib.util.cache_from_source(name)
    try:
        py_compile.compile(source, cfile=out + "/" + cfile, dfile=sys.argv[2] + "/" + name, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        continue  # not valid for this Python (templates, other versions' files): it stays source only
    written.append(cfile)
json.dump(written, sys.stdout)
"""


@dataclass(frozen=True)
class BytecodeCompiler:
    executable: str
    version: str  # "3.12"
    cache_tag: str  # "cpython-312": part of every .pyc name

    def compile(self, files: Sequence[tuple[str, Path]], out: Path) -> list[tuple[str, Path]]:
        """Unchecked-hash .pyc of each (archive name, source) under `out`: Python trusts them without
        comparing timestamps (zips carry ZIP_EPOCH) or hashing the source on each import."""
        sources = [(str(path), name) for name, path in files if name.endswith(".py")]
        # A fixed hash seed: set and frozenset constants are marshalled in hash order.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {"PYTHONHASHSEED": "0"}
        result = subprocess.run(
            [self.executable, "-s", "-c", _COMPILE, str(out), TASK_ROOT],
            input=json.dumps(sources), capture_output=True, text=True, env=env, check=False,
        )
        if result.returncode != 0:
            raise ArtifactError(f"compiling bytecode with {self.executable} failed:\n{result.stderr}")
        return [(name, out / name) for name in json.loads(result.stdout)]


def _probe(executable: str) -> BytecodeCompiler | None:
    probe = "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2], sys.implementation.cache_tag)"
    try:
        result = subprocess.run([executable, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 3 or fields[0] != "cpython":
        return None
    return BytecodeCompiler(executable, fields[1], fields[2])


_said_source_only: set[str] = set()


def find_compiler(python: str = LAMBDA_PYTHON) -> BytecodeCompiler | None:
    """An interpreter of exactly Python `python` to compile with, or None: the build then ships source
    and says so once. Tried: $COLLECTIONS_BUILD_PYTHON (a mismatch is an error), this interpreter,
    `python{python}` on PATH (the deploy workflow's actions/setup-python provides it)."""
    configured = os.environ.get(BUILD_PYTHON_ENV)
    if configured:
        compiler = _probe(configured)
        if compiler is None or compiler.version != python:
            found = f"Python {compiler.version}" if compiler else "not a working CPython"
            raise ArtifactError(f"{BUILD_PYTHON_ENV}={configured} is {found}; the Lambda runtime is Python {python}")
        return compiler
    candidates = [sys.executable, shutil.which(f"python{python}")]
    for executable in filter(None, candidates):
        compiler = _probe(executable)
        if compiler is not None and compiler.version == python:
            return compiler
    if python not in _said_source_only:
        _said_source_only.add(python)
        print(
            f"collections: no Python {python} here to compile bytecode with (set {BUILD_PYTHON_ENV}); "
            "shipping source only, so every cold start compiles it",
            file=sys.stderr,
        )
    return None


def _dependency_bytecode(deps: Path, compiler: BytecodeCompiler, build_dir: Path) -> list[tuple[str, Path]]:
    """The dependency set's .pyc, compiled once per (dependency set, Python) and cached like the set."""
    target = build_dir / "bytecode" / f"{deps.name}-{compiler.cache_tag}"
    if not (target / ".complete").exists():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        compiled = compiler.compile(_dependency_entries(deps), staging)
        (staging / ".complete").write_text("\n".join(name for name, _ in compiled) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    names = (target / ".complete").read_text().split()
    return [(name, target / name) for name in names]


def _dependency_entries(deps: Path) -> list[tuple[str, Path]]:
    return [
        (path.relative_to(deps).as_posix(), path)
        for path in sorted(deps.rglob("*"))
        if path.is_file() and path.name != ".complete" and "__pycache__" not in path.parts
    ]


def _zip_entries(deps: Path, source_root: Path) -> list[tuple[str, Path]]:
    entries = _dependency_entries(deps)
    entries += [(f"services/{p.relative_to(source_root).as_posix()}", p) for p in _source_files(source_root)]
    return entries


def build_zip(
    fn: catalog.Function,
    architecture: str | None = None,
    *,
    build_dir: Path | None = None,
    source_root: Path | None = None,
    check_limits: bool = True,
    python: str = LAMBDA_PYTHON,
    bytecode: bool = True,
) -> ZipArtifact:
    """A deterministic zip of the services package and the function's dependencies, with their
    bytecode when an interpreter of `python` is at hand (find_compiler).

    `check_limits=False` only measures (the benchmark reports an oversized artifact's size);
    `python` and `bytecode=False` are for the benchmark too (this machine's Python; the source-only
    baseline).
    """
    build_dir, source_root = build_dir or BUILD_DIR, source_root or SOURCE_PACKAGE
    architecture = architecture or fn.architecture
    # A build for another Python is the cold-start benchmark's, for this machine: it installs the
    # function's own lock for this machine's platform; Lambda builds must match the lock's platform.
    lock = lock_of(fn, architecture) if python == LAMBDA_PYTHON else lock_of(fn)
    deps = dependencies_dir(lock, architecture, build_dir, python=python)
    compiler = find_compiler(python) if bytecode else None
    with tempfile.TemporaryDirectory(prefix="collections-pyc-") as scratch:
        entries = _zip_entries(deps, source_root)
        if compiler is not None:
            own_code = [entry for entry in entries if not entry[1].is_relative_to(deps)]
            entries += compiler.compile(own_code, Path(scratch))
            entries += _dependency_bytecode(deps, compiler, build_dir)
            entries.sort()
        return _write_zip(fn, architecture, deps, entries, compiler, build_dir, check_limits)


def _write_zip(
    fn: catalog.Function,
    architecture: str,
    deps: Path,
    entries: list[tuple[str, Path]],
    compiler: BytecodeCompiler | None,
    build_dir: Path,
    check_limits: bool,
) -> ZipArtifact:
    unzipped = sum(path.stat().st_size for _, path in entries)
    if check_limits and unzipped > MAX_UNZIPPED_BYTES:
        raise ArtifactError(
            f"{fn.name}: the unzipped package is {unzipped / 2**20:.1f} MB; Lambda allows "
            f"{MAX_UNZIPPED_BYTES / 2**20:.0f} MB. Trim the dependency group {fn.dependency_group!r} "
            "or move the service to a container image slot (10 GB)."
        )
    out_dir = build_dir / "zips"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Named by its inputs (the immutable dependency set, the bytecode's Python and the source
    # files): an unchanged service is not zipped again on the next `pulumi preview`.
    inputs = hashlib.sha256(f"{deps.name} {compiler.cache_tag if compiler else 'source-only'}".encode())
    for name, file in entries:
        if not file.is_relative_to(deps) and not name.endswith(".pyc"):
            inputs.update(name.encode())
            inputs.update(file.read_bytes())
    path = out_dir / f"{fn.name}-{architecture}-{inputs.hexdigest()[:16]}.zip"
    if not path.exists():
        staging = out_dir / f".{path.name}.partial"
        with zipfile.ZipFile(staging, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, file in entries:
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.external_attr = 0o644 << 16  # Lambda runs as another user: files must be world-readable
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, file.read_bytes())
        staging.replace(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).digest()
    if check_limits and len(data) > MAX_ZIPPED_BYTES:
        raise ArtifactError(
            f"{fn.name}: the zip is {len(data) / 2**20:.1f} MB; Lambda accepts "
            f"{MAX_ZIPPED_BYTES / 2**20:.0f} MB zipped. Trim the dependency group {fn.dependency_group!r} "
            "or move the service to a container image slot."
        )
    return ZipArtifact(
        service=fn.name,
        path=path,
        source_code_hash=base64.b64encode(digest).decode(),
        zipped_bytes=len(data),
        unzipped_bytes=unzipped,
    )


DOCKERFILE = """\
# Generated by infra/artifacts.py for the {service} function: do not edit.
# Built for exactly one platform ({platform}); Lambda rejects multi-platform image indexes.
FROM {base_image}
COPY requirements.txt ${{LAMBDA_TASK_ROOT}}/requirements.txt
# The function's hash-locked dependency group (infra/locks/), installed as the zip build does.
RUN pip install --no-cache-dir {pip_options} \\
    -r "${{LAMBDA_TASK_ROOT}}/requirements.txt" --target "${{LAMBDA_TASK_ROOT}}"
COPY services/ ${{LAMBDA_TASK_ROOT}}/services/
# The task root is read-only at run time: compile now, with the runtime's own Python.
RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash "${{LAMBDA_TASK_ROOT}}"
CMD ["{handler}"]
"""


def image_context(
    fn: catalog.Function, *, build_dir: Path | None = None, source_root: Path | None = None
) -> ImageContext:
    """A build context of the service's own: its Dockerfile, requirements and the services package."""
    build_dir, source_root = build_dir or BUILD_DIR, source_root or SOURCE_PACKAGE
    context = build_dir / "images" / fn.name
    shutil.rmtree(context, ignore_errors=True)
    (context / "services").mkdir(parents=True)
    platform = DOCKER_PLATFORMS[fn.architecture]
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(
        DOCKERFILE.format(service=fn.name, platform=platform, base_image=BASE_IMAGE, handler=fn.handler,
                          pip_options=" ".join(pip_options(PLATFORMS[fn.architecture])))
    )
    shutil.copyfile(lock_of(fn), context / "requirements.txt")
    for path in _source_files(source_root):
        target = context / "services" / path.relative_to(source_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return ImageContext(service=fn.name, path=context, dockerfile=dockerfile, platform=platform)
