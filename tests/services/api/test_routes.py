"""The app serves exactly the routes services/catalog.py puts behind API Gateway, and documents them."""

from __future__ import annotations

from starlette.routing import Route

from services import catalog


def _served_routes(app) -> set[tuple[str, str]]:
    # Included routers are resolved lazily by FastAPI; the OpenAPI document lists every operation,
    # and the app's own routes (openapi.json, docs) are plain Starlette routes.
    documented = {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}
    own = {(method, r.path) for r in app.routes if isinstance(r, Route) for method in (r.methods or ()) - {"HEAD"}}
    return documented | own


def test_app_routes_equal_the_catalog_routes(app):
    assert _served_routes(app) == {(r.method, r.path) for r in catalog.API_ROUTES}


def test_unauthenticated_catalog_routes_answer_without_a_token(client):
    for route in catalog.API_ROUTES:
        if not route.authorized:
            path = route.path.replace("{asset}", "swagger-ui.css")
            assert client.request(route.method, path).status_code == 200, route.route_key


def test_authorized_catalog_routes_refuse_a_missing_token(client):
    for route in catalog.API_ROUTES:
        if route.authorized:
            path = route.path.replace("{item_id}", "00000000-0000-4000-8000-000000000000")
            assert client.request(route.method, path).status_code == 401, route.route_key


def test_openapi_declares_bearer_auth_and_error_shape(client):
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "ErrorResponse" in document["components"]["schemas"]
    assert document["paths"]["/items/{item_id}"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in document["paths"]["/health"]["get"]
    assert "swagger" in client.get("/docs").text.lower()


def test_docs_work_offline_from_packaged_assets(client):
    page = client.get("/docs").text
    assert "cdn" not in page.lower() and "https://" not in page
    for name, media_type in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css"), ("favicon.png", "png")):
        assert f"docs/{name}" in page or name == "favicon.png"
        asset = client.get(f"/docs/{name}")
        assert asset.status_code == 200 and media_type in asset.headers["content-type"] and len(asset.content) > 100
    assert client.get("/docs/..%2Fsettings.py").status_code == 404
    assert client.get("/docs/index.html").status_code == 404
