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

from infra import artifacts
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

    def counting(requirements, platform, target):
        calls.append((tuple(requirements), platform))
        code_only_installer(requirements, platform, target)

    fn = catalog.function("embedder")
    with artifacts.use_installer(counting):
        first = build_zip(fn, build_dir=tmp_path / "a")
        again = build_zip(fn, build_dir=tmp_path / "a")  # cached: neither pip nor zip again
        elsewhere = build_zip(fn, build_dir=tmp_path / "b")  # built from scratch: the same bytes
        other = build_zip(fn, "x86_64", build_dir=tmp_path / "a")
    assert first == again
    assert elsewhere.source_code_hash == first.source_code_hash and elsewhere.path != first.path
    assert calls == [(catalog.DEPENDENCY_GROUPS["embedder"], "manylinux2014_aarch64"),
                     (catalog.DEPENDENCY_GROUPS["embedder"], "manylinux2014_aarch64"),
                     (catalog.DEPENDENCY_GROUPS["embedder"], "manylinux2014_x86_64")]
    assert other.source_code_hash != first.source_code_hash
    with zipfile.ZipFile(first.path) as archive:
        assert {i.date_time for i in archive.infolist()} == {artifacts.ZIP_EPOCH}
        assert "pgvector>=0.3" in archive.read("REQUIREMENTS.txt").decode()


def test_a_failed_install_leaves_no_complete_cache(tmp_path):
    def broken(requirements, platform, target):
        (target / "half.py").write_text("")
        raise ArtifactError("pip could not install")

    with artifacts.use_installer(broken), pytest.raises(ArtifactError):
        build_zip(catalog.function("cleanup"), build_dir=tmp_path)
    assert not list((tmp_path / "deps").glob("*/.complete"))


def test_pip_failure_is_reported_with_its_output(tmp_path):
    with pytest.raises(ArtifactError, match="pip could not install no-such-package-collections-x==0.0.0"):
        artifacts.pip_install(["no-such-package-collections-x==0.0.0"], "manylinux2014_aarch64", tmp_path)


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
    assert (context.path / "requirements.txt").read_text().split() == list(catalog.DEPENDENCY_GROUPS["analyzer"])
    assert (context.path / "services" / "analyzer" / "handler.py").exists()
    assert not (context.path / "services" / "local").exists()


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
