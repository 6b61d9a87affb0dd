"""The web app in a real browser against `collections dev` (what `make dev` runs), as a person uses it.

Headless Chromium from Debian's `chromium` package (installed by `make test`), driven by Playwright
for Python with that executable: no browser download. The tests run in order on one dev process and
share what they made (the first user's items). Each main screen is saved under
tests/e2e/screenshots/ and checked with axe-core (from npm, pinned in tests/e2e/web/package-lock.json):
no serious or critical violations. Every page also records CSP violations: there must be none, so
the app works under the same policy CloudFront sends.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright import sync_api as playwright_api
from playwright.sync_api import expect

from services.local.demo import sample_images
from tests.e2e.conftest import DevProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
NPM_DIR = Path(__file__).parent / "web"
AXE = NPM_DIR / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).parent / "screenshots"
MAX_UPLOAD_BYTES = 1024 * 1024  # small, so the oversized file is cheap to make
SECOND_USER = "second@example.com"
DEMO_PASSWORD = "Collections-demo-1"
RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def dev() -> Iterator[DevProcess]:
    folder = Path(tempfile.mkdtemp(prefix="collections-web-"))
    process = DevProcess(folder / "data")
    process.env["COLLECTIONS_MAX_UPLOAD_BYTES"] = str(MAX_UPLOAD_BYTES)
    process.start()
    yield process
    try:
        process.interrupt(timeout=60)
    except Exception:
        process.kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def app_url(dev) -> str:
    [line] = [line for line in dev.lines if line.strip().startswith("App ")]
    url = line.split()[1]
    assert url == f"http://127.0.0.1:{dev.web_port}"
    return url


@pytest.fixture(scope="module")
def runtime(dev) -> dict:
    return json.loads((dev.data_dir / "runtime.json").read_text())


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():  # `make test` installs it; a bare pytest run installs it here
        npm = shutil.which("npm")
        assert npm, "npm is needed to install axe-core for the browser tests (apt-get install npm)"
        subprocess.run([npm, "ci", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund"], check=True,
                       capture_output=True, timeout=300)
    return AXE.read_text()


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).is_file(), "Debian's chromium is needed: `make test` installs it (apt-get install chromium)"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _new_page(browser, **context_options):
    context = browser.new_context(**context_options)
    context.add_init_script(RECORD_CSP)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


@pytest.fixture(scope="module")
def page(browser, app_url):
    """The demo user's tab, kept across the tests of this module."""
    page = _new_page(browser, viewport={"width": 1280, "height": 800})
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def look(axe_source):
    """Screenshot the screen, check it with axe-core, and check no CSP violation happened so far."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def check(page, name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        page.evaluate(axe_source)  # through the DevTools protocol: the page's CSP does not apply
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], f"{name}: accessibility violations:\n" + "\n".join(serious)
        assert page.evaluate("window.__cspViolations") == [], f"{name}: the CSP blocked something"
        assert page.errors == [], f"{name}: page errors {page.errors}"

    return check


def _token(dev, user: str | None = None) -> str:
    result = dev.cli("token", *(["--user", user] if user else []))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _items(dev, runtime, user: str | None = None) -> list[dict]:
    response = httpx.get(f"{runtime['api_url']}/items", params={"limit": 100},
                         headers={"Authorization": f"Bearer {_token(dev, user)}"}, timeout=30)
    response.raise_for_status()
    return response.json()["items"]


def _files(*samples) -> list[dict]:
    return [{"name": s.filename, "mimeType": s.content_type, "buffer": s.data} for s in samples]


def _signed_in(page, app_url: str, user: str = "demo@example.com") -> None:
    page.goto(app_url)
    expect(page.locator("#user-name")).to_have_text(user)


# --- the tests, in the order a person would go ---------------------------------------------------
def test_opening_the_printed_url_signs_the_demo_user_in(page, app_url, look):
    _signed_in(page, app_url)
    expect(page.locator(".note")).to_have_text(re.compile("No images yet"))
    response = httpx.get(app_url)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    look(page, "01-browse-empty")


def test_three_uploads_reach_ready_in_the_grid(page, look):
    page.set_input_files("#file-input", _files(*sample_images()))
    rows = page.locator(".upload")
    expect(rows).to_have_count(3)
    expect(page.locator(".upload[data-state=ready]")).to_have_count(3, timeout=90_000)
    cards = page.locator(".grid a.card[data-status=ready] img")
    expect(cards).to_have_count(3, timeout=30_000)
    for index in range(3):
        image = cards.nth(index)
        expect(image).to_have_attribute("alt", re.compile(r"image \(640x480 px\)"))  # alt text from the description
        # The thumbnail really loaded from the bucket (presigned GET, allowed by the CSP).
        assert image.evaluate("img => img.complete && img.naturalWidth > 0") is True
    look(page, "02-uploads-ready")


def test_search_by_meaning_finds_the_red_image(page, look):
    page.locator("#search-input").fill("red")
    page.locator("#search-input").press("Enter")
    expect(page.locator("h1")).to_have_text("Results for “red”")
    first = page.locator(".grid a.card").first
    expect(first.locator("img")).to_have_attribute("alt", re.compile("mostly red"))
    look(page, "03-search")


def test_more_like_this_lists_the_other_images(page):
    page.locator(".grid a.card").first.click()
    page.get_by_role("link", name="More like this").click()
    expect(page.locator("h1")).to_have_text(re.compile("^More like"))
    expect(page.locator(".grid a.card")).to_have_count(2)


def test_an_edited_tag_is_saved_and_finds_the_item(page, dev, runtime, look):
    page.go_back()
    expect(page.locator("article.item")).to_be_visible()
    look(page, "04-item")
    page.get_by_role("button", name="Edit").click()
    page.locator("#edit-tags").fill("sunset-trip, red")
    page.locator("#edit-title").fill("<b>Evening</b> by the sea")  # text, never markup
    look(page, "05-edit")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("article.item h1")).to_have_text("<b>Evening</b> by the sea")
    assert page.locator("article.item h1 b").count() == 0
    page.locator(".tags").get_by_role("link", name="sunset-trip").click()
    expect(page.locator(".grid a.card")).to_have_count(1)
    expect(page.locator(".grid .card-title")).to_have_text("<b>Evening</b> by the sea")
    # Saved on the server, not only on screen.
    [edited] = [i for i in _items(dev, runtime) if "sunset-trip" in i["tags"]]
    assert edited["tags"] == ["sunset-trip", "red"] and edited["user_edited"] is True


def test_refused_files_show_why_before_anything_is_sent(page, dev, runtime):
    page.goto(page.url.split("#")[0] + "#/")
    before = len(_items(dev, runtime))
    svg = {"name": "drawing.svg", "mimeType": "image/svg+xml", "buffer": b"<svg xmlns='http://www.w3.org/2000/svg'/>"}
    big = {"name": "huge.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n" + bytes(MAX_UPLOAD_BYTES)}
    page.set_input_files("#file-input", [svg, big])
    refused = page.locator(".upload[data-state=refused]")
    expect(refused).to_have_count(2)
    expect(refused.filter(has_text="drawing.svg").locator(".upload-reason")).to_have_text(
        re.compile("image/svg\\+xml is not accepted"))
    expect(refused.filter(has_text="huge.png").locator(".upload-reason")).to_have_text(
        re.compile("over the 1.0 MB limit"))
    assert len(_items(dev, runtime)) == before  # no item was created for either


def test_a_failed_item_shows_its_reason_and_retry_takes_it_to_ready(page, dev, runtime, look):
    import boto3

    from services.local.aws import FAKE_CREDENTIALS

    broken = {"name": "later.png", "mimeType": "image/png", "buffer": b"\x89PNG but truncated"}
    page.set_input_files("#file-input", [broken])
    row = page.locator(".upload").filter(has_text="later.png")
    expect(row).to_have_attribute("data-state", "failed", timeout=60_000)
    expect(row.locator(".upload-reason")).not_to_be_empty()
    look(page, "06-upload-failed")

    # The person fixes the file where it lies; Retry runs the pipeline on it again.
    [item] = [i for i in _items(dev, runtime) if i["filename"] == "later.png"]
    s3 = boto3.client("s3", endpoint_url=runtime["aws_endpoint_url"], region_name=runtime["region"],
                      aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket=runtime["bucket"], Prefix="uploads/")["Contents"]
             if item["id"] in o["Key"]]
    s3.put_object(Bucket=runtime["bucket"], Key=key, Body=sample_images()[1].data, ContentType="image/png")
    row.get_by_role("button", name="Retry later.png").click()
    expect(row).to_have_attribute("data-state", "ready", timeout=60_000)


def test_delete_asks_then_removes_the_item(page, dev, runtime):
    [item] = [i for i in _items(dev, runtime) if i["filename"] == "later.png"]
    page.goto(page.url.split("#")[0] + f"#/items/{item['id']}")
    expect(page.locator("article.item")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#status")).to_have_text(re.compile("^Deleted"))
    expect(page.locator(f".grid li[data-id='{item['id']}']")).to_have_count(0)
    page.reload()
    expect(page.locator(".grid a.card")).to_have_count(3)
    assert item["id"] not in {i["id"] for i in _items(dev, runtime)}


def test_keyboard_moves_through_the_grid_and_opens_an_item(page):
    page.goto(page.url.split("#")[0] + "#/")
    cards = page.locator(".grid a.card")
    expect(cards).to_have_count(3)
    cards.nth(0).focus()
    page.keyboard.press("ArrowRight")
    expect(cards.nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("article.item h1")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator(".grid a.card")).to_have_count(3)
    page.keyboard.press("/")
    expect(page.locator("#search-input")).to_be_focused()


def test_a_second_user_sees_none_of_the_first_users_items(browser, app_url, dev, runtime, look):
    _token(dev, SECOND_USER)  # creates the user on the dev pool
    [first_users_item] = _items(dev, runtime)[:1]
    page = _new_page(browser)
    try:
        _signed_in(page, app_url)
        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("#signin-form")).to_be_visible()
        look(page, "07-sign-in")
        page.locator("#signin-email").fill(SECOND_USER)
        page.locator("#signin-password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#user-name")).to_have_text(SECOND_USER)
        expect(page.locator(".note")).to_have_text(re.compile("No images yet"))
        page.goto(f"{app_url}/#/items/{first_users_item['id']}")
        expect(page.locator("h1")).to_have_text("Not found")
        page.goto(f"{app_url}/#/search?q=red")
        expect(page.locator(".note")).to_have_text(re.compile("Nothing found"))
    finally:
        page.context.close()


def test_the_app_works_at_360_px(browser, app_url, look):
    page = _new_page(browser, viewport={"width": 360, "height": 780}, device_scale_factor=2, is_mobile=True,
                     has_touch=True)
    try:
        _signed_in(page, app_url)
        expect(page.locator(".grid a.card")).to_have_count(3)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        look(page, "08-mobile-browse")
        page.locator(".grid a.card").first.click()
        expect(page.locator("article.item")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        look(page, "09-mobile-item")
    finally:
        page.context.close()


def test_tokens_are_refreshed_before_they_expire(browser, app_url):
    page = _new_page(browser)
    try:
        _signed_in(page, app_url)
        before = page.evaluate("JSON.parse(sessionStorage.getItem('collections.session'))")
        # Make the access token look about to expire: the next load refreshes it first.
        page.evaluate("""() => {
            const s = JSON.parse(sessionStorage.getItem('collections.session'));
            s.expiresAt = Date.now() + 30000;
            sessionStorage.setItem('collections.session', JSON.stringify(s));
        }""")
        time.sleep(1.1)  # tokens carry whole seconds: a refreshed one differs
        page.reload()
        expect(page.locator(".grid a.card")).to_have_count(3)
        after = page.evaluate("JSON.parse(sessionStorage.getItem('collections.session'))")
        assert after["accessToken"] != before["accessToken"]
        assert after["expiresAt"] > time.time() * 1000 + 10 * 60 * 1000
    finally:
        page.context.close()


def test_a_401_asks_to_sign_in_again_and_comes_back_to_the_same_screen(browser, app_url):
    page = _new_page(browser)
    try:
        _signed_in(page, app_url)
        page.goto(f"{app_url}/#/search?q=blue")
        expect(page.locator(".grid a.card").first).to_be_visible()
        # A revoked session: the API answers 401 and the refresh token is refused too.
        page.evaluate("""() => {
            const s = JSON.parse(sessionStorage.getItem('collections.session'));
            s.accessToken = 'revoked'; s.refreshToken = 'revoked';
            sessionStorage.setItem('collections.session', JSON.stringify(s));
        }""")
        page.reload()
        expect(page.locator("#signin-form")).to_be_visible()
        expect(page.locator("#signin-form .reason")).to_have_text(re.compile("sign in again"))
        page.locator("#signin-email").fill("demo@example.com")
        page.locator("#signin-password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"#/search\?q=blue$"))
        expect(page.locator("h1")).to_have_text("Results for “blue”")
    finally:
        page.context.close()


def test_the_api_lets_only_the_app_origin_call_it_from_a_browser(app_url, runtime):
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(f"{runtime['api_url']}/items", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})

    allowed = preflight(app_url)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == app_url
    refused = preflight("http://evil.example")
    assert "access-control-allow-origin" not in refused.headers
    # The bucket: the same rules the Pulumi program sets (services.web.site.bucket_cors_rules).
    import boto3

    from services.local.aws import FAKE_CREDENTIALS
    from services.web.site import bucket_cors_rules

    s3 = boto3.client("s3", endpoint_url=runtime["aws_endpoint_url"], region_name=runtime["region"],
                      aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    assert s3.get_bucket_cors(Bucket=runtime["bucket"])["CORSRules"] == bucket_cors_rules([app_url])


def test_the_app_folder_is_what_the_dev_server_serves(app_url):
    from services.web import site

    for name, path in site.app_files().items():
        response = httpx.get(f"{app_url}/{name}", headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200 and response.content == path.read_bytes(), name
        assert response.headers["content-type"] == site.content_type(name)
    for outside in ("pyproject.toml", "%2e%2e/pyproject.toml", "%2e%2e/web/site.py"):
        assert httpx.get(f"{app_url}/{outside}").status_code == 404, outside
