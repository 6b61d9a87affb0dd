"""The web app's deployment (infra/components/web.py) under the mocks: a private bucket read only by
its CloudFront distribution, the API on the same origin, the security headers, Cognito's hosted UI
with the app as callback, config.json — and classifier scenarios showing the zip → image flip and
an app release leave each other alone."""

from __future__ import annotations

import json
import re
import shutil
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from infra.components import auth, web
from infra.plan import diff
from services import catalog
from services.web import site
from tests.infra.conftest import slots

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
WEB_TYPES = {DISTRIBUTION, OBJECT, "aws:cloudfront/originAccessControl:OriginAccessControl",
             "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy", "aws:cognito/userPoolDomain:UserPoolDomain"}


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    from infra.mocks import run_program

    return run_program("dev", build_dir=tmp_path_factory.mktemp("web-build"))


def _web(run, typ: str) -> list:
    return [r for r in run.of_type(typ) if "-web" in r.name]


def test_app_url_is_a_stack_output_on_both_stacks(program, dev):
    assert dev.outputs["app_url"].startswith("https://d") and dev.outputs["app_url"].endswith(".cloudfront.net")
    assert program("prod").outputs["app_url"].endswith(".cloudfront.net")


def test_the_app_bucket_is_blocked_and_read_only_by_its_distribution(dev):
    [block] = _web(dev, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                  "restrictPublicBuckets"))
    [distribution] = dev.of_type(DISTRIBUTION)
    [policy] = _web(dev, "aws:s3/bucketPolicy:BucketPolicy")
    assert block.urn in policy.dependencies  # never a policy on a bucket that is not yet blocked
    bucket_name = policy.inputs["bucket"]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    [allow] = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert allow["Resource"] == f"arn:aws:s3:::{bucket_name}/*"
    source_arn = allow["Condition"]["StringEquals"]["AWS:SourceArn"]
    assert re.fullmatch(r"arn:aws:cloudfront::\d{12}:distribution/E\w+", source_arn)
    [oac] = dev.of_type("aws:cloudfront/originAccessControl:OriginAccessControl")
    assert (oac.inputs["signingBehavior"], oac.inputs["signingProtocol"]) == ("always", "sigv4")
    [app_origin] = [o for o in distribution.inputs["origins"] if o["originId"] == web.APP_ORIGIN_ID]
    assert app_origin["originAccessControlId"] and "customOriginConfig" not in app_origin
    assert app_origin["domainName"] == f"{bucket_name}.s3.eu-west-1.amazonaws.com"


def test_every_catalog_route_is_served_by_the_api_origin_and_app_files_are_not():
    routes = [r for f in catalog.FUNCTIONS for t in f.triggers_of("http") for r in t.routes]
    patterns = web.api_path_patterns(routes)
    concrete = {route.path.replace("{item_id}", "0b7c").replace("{id}", "0b7c") for route in routes}
    for path in concrete:
        assert any(fnmatchcase(path, p) for p in patterns), path
    for name in [*site.app_files(), site.CONFIG_FILE]:
        assert not any(fnmatchcase(f"/{name}", p) for p in patterns), name
    with pytest.raises(ValueError, match="shadowed"):
        web.check_no_collision(patterns, ["items/help.html"])


def test_api_behaviours_forward_the_token_and_cache_nothing(dev):
    [distribution] = dev.of_type(DISTRIBUTION)
    behaviours = distribution.inputs["orderedCacheBehaviors"]
    assert {b["pathPattern"] for b in behaviours} >= {"/items", "/items/*", "/search", "/uploads"}
    for behaviour in behaviours:
        assert behaviour["targetOriginId"] == web.API_ORIGIN_ID
        assert behaviour["cachePolicyId"] == web.CACHING_DISABLED
        assert behaviour["originRequestPolicyId"] == web.ALL_VIEWER_EXCEPT_HOST_HEADER
        assert set(behaviour["allowedMethods"]) >= {"GET", "POST", "PATCH", "DELETE", "OPTIONS"}
    [api_origin] = [o for o in distribution.inputs["origins"] if o["originId"] == web.API_ORIGIN_ID]
    assert api_origin["domainName"] == dev.outputs["api_url"].split("://")[1]
    assert api_origin["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    assert distribution.inputs["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"


def test_security_headers_allow_only_what_the_app_uses(dev):
    [policy] = dev.of_type("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy")
    headers = policy.inputs["securityHeadersConfig"]
    csp = headers["contentSecurityPolicy"]["contentSecurityPolicy"]
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    bucket = dev.outputs["bucket"]
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    connect = set(directives["connect-src"].split())
    auth = [o for o in connect if o.endswith(".amazoncognito.com")]
    assert connect == {"'self'", *site.storage_origins_on_aws(bucket, "eu-west-1"), *auth} and len(auth) == 1
    assert headers["strictTransportSecurity"]["accessControlMaxAgeSec"] >= 31536000
    assert headers["contentTypeOptions"]["override"] is True
    assert headers["frameOptions"]["frameOption"] == "DENY"
    [distribution] = dev.of_type(DISTRIBUTION)
    assert distribution.inputs["defaultCacheBehavior"]["responseHeadersPolicyId"]


def test_the_csp_names_the_origins_botocore_presigns_for_the_bucket():
    """What the API hands the browser on AWS (presigned POST for uploads, GET for images) must be
    allowed by connect-src/img-src: asked of botocore itself, offline (no endpoint override)."""
    from services.core.settings import Settings
    from services.core.storage import Storage

    settings = Settings(bucket="collections-dev-bucket-1234567", aws_region="eu-west-1", aws_endpoint_url=None)
    import boto3

    client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    storage = Storage(settings, client=client)
    import uuid

    post = storage.presigned_post("sub", uuid.uuid4(), "a.png", "image/png")
    get = storage.presigned_get("thumbnails/sub/x/256.webp")
    allowed = site.storage_origins_on_aws(settings.bucket, "eu-west-1")
    assert site.origin(post["url"]) in allowed
    assert site.origin(get) in allowed


def test_cognito_client_uses_the_code_flow_with_the_app_as_its_only_callback(dev):
    [client] = dev.of_type(CLIENT)
    app = dev.outputs["app_url"] + "/"
    assert client.inputs["generateSecret"] is False
    assert client.inputs["allowedOauthFlows"] == ["code"] and client.inputs["allowedOauthFlowsUserPoolClient"]
    assert client.inputs["callbackUrls"] == [app] and client.inputs["logoutUrls"] == [app]
    assert client.inputs["enableTokenRevocation"] is True  # the app revokes its refresh token on sign-out
    [domain] = dev.of_type("aws:cognito/userPoolDomain:UserPoolDomain")
    assert not any(word in domain.inputs["domain"] for word in ("aws", "amazon", "cognito"))


def test_config_json_sends_the_app_to_its_own_origin_and_the_hosted_ui(dev):
    [config_object] = [o for o in dev.of_type(OBJECT) if o.inputs["key"] == site.CONFIG_FILE]
    config = json.loads(config_object.inputs["content"])
    [domain] = dev.of_type("aws:cognito/userPoolDomain:UserPoolDomain")
    assert config["apiUrl"] == ""
    assert config["auth"] == {"mode": "hosted", "clientId": dev.outputs["user_pool_client_id"],
                              "domain": f"https://{domain.inputs['domain']}.auth.eu-west-1.amazoncognito.com"}
    assert config["uploadTypes"] == list(site.UPLOAD_TYPES)


def test_every_app_file_is_uploaded_with_its_content_type(dev):
    uploaded = {o.inputs["key"]: o.inputs for o in dev.of_type(OBJECT)}
    assert set(uploaded) == {*site.app_files(), site.CONFIG_FILE}
    for name, path in site.app_files().items():
        assert uploaded[name]["contentType"] == site.content_type(path)
        assert uploaded[name]["cacheControl"] == web.CACHE_CONTROL


def test_the_uploads_bucket_accepts_browser_posts_from_the_app(dev):
    [cors] = [r for r in dev.of_type("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")]
    [rule] = cors.inputs["corsRules"]
    assert dev.outputs["app_url"] in rule["allowedOrigins"] and "POST" in rule["allowedMethods"]


def test_an_unknown_file_type_in_the_app_is_refused(tmp_path):
    (tmp_path / site.INDEX_FILE).write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(site.UnknownFileType, match="notes.txt"):
        site.app_files(tmp_path)


# --- classifier scenarios ------------------------------------------------------------------------
def test_the_zip_to_image_flip_touches_nothing_of_the_web_app(plan_of):
    step1 = slots("api", "blue", blue="zip", green="image")
    step2 = slots("api", "green", blue="zip", green="image")
    for plan in (plan_of("dev", None, step1), plan_of("dev", step1, step2)):
        assert plan.actions("replace") == []
        touched = [c for c in plan.actions("create", "update", "delete")
                   if c.type in WEB_TYPES or c.type == CLIENT or "-web-" in c.name]
        assert touched == [], [str(c) for c in touched]
        assert "app_url" not in plan.output_changes


def test_an_app_release_updates_only_the_changed_file(program, monkeypatch, tmp_path):
    app = tmp_path / "app"  # one copy for both runs: files keep their paths, only app.css changes
    shutil.copytree(site.APP_DIR, app)
    monkeypatch.setattr(site, "APP_DIR", app)
    monkeypatch.setattr(site.app_files, "__defaults__", (app,))
    before = program("dev")
    (app / "app.css").write_text((app / "app.css").read_text() + "\n/* release 2 */\n")
    after = program("dev")
    plan = diff(before, after)
    changes = plan.actions("create", "update", "replace", "delete")
    assert [(c.type, c.name, c.action, c.inputs) for c in changes] == [
        (OBJECT, "collections-dev-web-file-app.css", "update", ("sourceHash",))]
    assert plan.output_changes == {}  # no function version, alias or URL moved


def test_a_failure_after_the_deferred_app_url_is_reported_not_hung(build_dir, tmp_path):
    """Storage and Auth wait on the app's URL (a deferred output); if the program fails before the
    distribution exists, the run must end with the error instead of waiting forever. In a process of
    its own: a failed run leaves Pulumi's process-wide runtime state behind."""
    import subprocess
    import sys

    (tmp_path / site.INDEX_FILE).write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("not servable")
    script = f"""
from pathlib import Path
from services.web import site
site.APP_DIR = Path({str(tmp_path)!r})
site.app_files.__defaults__ = (site.APP_DIR,)
from infra.mocks import run_program
run_program("dev", build_dir=Path({str(build_dir)!r}))
"""
    # The timeout only detects a hang: a normal run takes seconds.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode != 0 and "notes.txt" in result.stderr, result.stderr[-2000:]


# Cognito's prefix-domain rules (CreateUserPoolDomain "Domain" pattern, reserved words): a stack name
# that breaks them is refused before anything is deployed.
@pytest.mark.parametrize("name", ["collections-prod", "a", "x" * 52])
def test_domain_prefix_follows_cognitos_rules(name):
    prefix = auth.domain_prefix(name, "eu-west-1_AbC123")
    assert prefix.startswith(f"{name}-") and len(prefix) <= 63
    assert auth.DOMAIN_PREFIX_PATTERN.fullmatch(prefix)


@pytest.mark.parametrize("name", ["Collections-Prod", "collections_dev", "collections.dev", "-dev", "x" * 53,
                                  "my-aws-app", "amazonian", "cognito-test"])
def test_domain_prefix_refuses_what_cognito_would_refuse(name):
    with pytest.raises(auth.InvalidDomainPrefix):
        auth.domain_prefix(name, "eu-west-1_AbC123")
