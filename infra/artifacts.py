"""Build what a Lambda slot runs: a deterministic zip, or the context of a container image.

Both hold the `services` package plus the function's dependency group (services/catalog.py)
installed for the Lambda platform, never for this machine. They are built when the program runs
(before any resource is registered), not inside an `apply`, so `pulumi preview` shows the real
`source_code_hash` and a failed build stops the program with a plain error.

Dependencies are cached per (requirements, platform) under .collections/build/deps, so a second
`pulumi up` with unchanged requirements installs nothing.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services import catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / ".collections" / "build"
SOURCE_PACKAGE = REPO_ROOT / "services"
LAMBDA_PYTHON = "3.12"
BASE_IMAGE = f"public.ecr.aws/lambda/python:{LAMBDA_PYTHON}"
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
DOCKER_PLATFORMS = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}

# Lambda's deployment package limits for zip archives.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

# Not shipped: the local runtime (moto, embedded PostgreSQL), the browser app (services/web, deployed
# to its own bucket by infra/components/web.py, so an app change publishes no function version) and
# bytecode, which Lambda compiles itself and which would make the archive depend on this machine's Python.
EXCLUDED_PARTS = {"__pycache__", "local", "web"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same inputs, same bytes, same hash

Installer = Callable[[Sequence[str], str, Path], None]


class ArtifactError(RuntimeError):
    """The artifact cannot be built or breaks one of Lambda's limits."""


def pip_install(requirements: Sequence[str], platform: str, target: Path) -> None:
    """Install wheels for Lambda's Python and CPU into `target` (binary wheels only: no local compiling)."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--platform", platform, "--python-version", LAMBDA_PYTHON, "--implementation", "cp",
        "--only-binary=:all:", "--target", str(target), *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ArtifactError(f"pip could not install {' '.join(requirements)} for {platform}:\n{result.stderr}")


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


def _source_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_dir() or EXCLUDED_PARTS & set(relative.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        files.append(path)
    return files


def dependencies_dir(requirements: Sequence[str], architecture: str, build_dir: Path | None = None) -> Path:
    """The installed dependency set, built once per (requirements, platform)."""
    build_dir = build_dir or BUILD_DIR
    platform = PLATFORMS[architecture]
    key = hashlib.sha256("\n".join([platform, LAMBDA_PYTHON, *sorted(requirements)]).encode()).hexdigest()[:16]
    target = build_dir / "deps" / f"{architecture}-{key}"
    if (target / ".complete").exists():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _installer(requirements, platform, staging)
    (staging / ".complete").write_text("\n".join(requirements) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # a half-finished install never looks complete
    return target


def _zip_entries(deps: Path, source_root: Path) -> list[tuple[str, Path]]:
    entries = [
        (path.relative_to(deps).as_posix(), path)
        for path in sorted(deps.rglob("*"))
        if path.is_file() and path.name != ".complete" and "__pycache__" not in path.parts
    ]
    entries += [(f"services/{p.relative_to(source_root).as_posix()}", p) for p in _source_files(source_root)]
    return entries


def build_zip(
    fn: catalog.Function,
    architecture: str | None = None,
    *,
    build_dir: Path | None = None,
    source_root: Path | None = None,
    check_limits: bool = True,
) -> ZipArtifact:
    """A deterministic zip of the services package and the function's dependencies.

    `check_limits=False` only measures (the benchmark reports an oversized artifact's size).
    """
    build_dir, source_root = build_dir or BUILD_DIR, source_root or SOURCE_PACKAGE
    architecture = architecture or fn.architecture
    deps = dependencies_dir(requirements_of(fn), architecture, build_dir)
    entries = _zip_entries(deps, source_root)
    unzipped = sum(path.stat().st_size for _, path in entries)
    if check_limits and unzipped > MAX_UNZIPPED_BYTES:
        raise ArtifactError(
            f"{fn.name}: the unzipped package is {unzipped / 2**20:.1f} MB; Lambda allows "
            f"{MAX_UNZIPPED_BYTES / 2**20:.0f} MB. Trim the dependency group {fn.dependency_group!r} "
            "or move the service to a container image slot (10 GB)."
        )
    out_dir = build_dir / "zips"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Named by its inputs (the immutable dependency set and the source files): an unchanged
    # service is not zipped again on the next `pulumi preview`.
    inputs = hashlib.sha256(deps.name.encode())
    for name, file in entries:
        if not file.is_relative_to(deps):
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
RUN pip install --no-cache-dir -r ${{LAMBDA_TASK_ROOT}}/requirements.txt --target ${{LAMBDA_TASK_ROOT}}
COPY services/ ${{LAMBDA_TASK_ROOT}}/services/
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
        DOCKERFILE.format(service=fn.name, platform=platform, base_image=BASE_IMAGE, handler=fn.handler)
    )
    (context / "requirements.txt").write_text("\n".join(requirements_of(fn)) + "\n")
    for path in _source_files(source_root):
        target = context / "services" / path.relative_to(source_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return ImageContext(service=fn.name, path=context, dockerfile=dockerfile, platform=platform)
