"""API latency through the Lambda path: payload 2.0 events → Mangum → FastAPI → PostgreSQL.

100,000 items with 1024-d embeddings in an embedded PostgreSQL of its own (binary COPY, HNSW built
after loading); 10,000 belong to the measured user. p50/p95/p99 of GET /items, GET /items/{id} and
GET /search (query embedded by the local embedder), in auth_mode=apigateway (authorizer claims),
plus one request set in jwks mode (RS256 verification), search with a 1% category filter (today's
plan beside the current one, with recall@10 against exact search), and the query plans. Cold
starts are bench_coldstart's: from the function's real artifact, not this virtualenv.

Run: .venv/bin/python -m tests.bench bench_api
"""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOTAL_ITEMS = 100_000
USER_ITEMS = 10_000
OTHER_USERS = 30
DIMENSION = 1024
CLUSTERS = 256
REQUESTS = {"list": 400, "get": 400, "search": 300}
WARMUP = 30
# The brief's targets; the filtered variants have none (reported for the query plans' sake).
TARGET_P95_MS = {
    "GET /items": 15.0,
    "GET /items?cursor (page 5)": 15.0,
    "GET /items/{id}": 15.0,
    "GET /search": 30.0,
}
ISSUER = "https://issuer.bench"
# apigateway mode verifies the forwarded token too (services/core/auth.py): every event carries one.
AUTH_HEADERS: dict[str, str] = {}
USER = "bench-user-0000"
CLIENT_ID = "bench-client"
WORDS = [
    "cat",
    "dog",
    "bicycle",
    "beach",
    "sunset",
    "mountain",
    "ramen",
    "coffee",
    "street",
    "night",
    "snow",
    "forest",
    "river",
    "bridge",
    "city",
    "car",
    "flower",
    "garden",
    "portrait",
    "market",
    "train",
    "window",
    "book",
    "guitar",
    "bird",
    "boat",
    "lighthouse",
    "desert",
    "rain",
    "harbour",
]
CATEGORIES = ("animal", "food", "landscape", "people", "vehicle", "architecture", "object", "plant")
# A rare category on 1% of the items, at random (not tied to the vector clusters): the selective
# filter whose search the issue measured at p95 117 ms.
RARE_CATEGORY, RARE_SHARE = "document", 0.01
FILTERED_TARGET_P95_MS, FILTERED_MIN_RECALL = 30.0, 0.95


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 2)

    return {
        "n": len(ordered),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


# --- data -----------------------------------------------------------------------------------
def _load(url: str) -> dict[str, float]:
    """Bulk-load with binary COPY, then build the indexes the migration made (HNSW after the data)."""
    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.enum import EnumInfo, register_enum

    from services.core.models import ItemStatus

    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    timings: dict[str, float] = {}
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((CLUSTERS, DIMENSION)).astype(np.float32)
    owners = [USER] * USER_ITEMS + [f"bench-other-{n:04d}" for n in range(OTHER_USERS)] * (
        (TOTAL_ITEMS - USER_ITEMS) // OTHER_USERS
    )
    random.Random(7).shuffle(owners)  # interleave users through the heap, as real traffic would
    now = datetime.now(UTC)
    pyrandom = random.Random(11)
    category_draw = random.Random(13)  # its own stream: the other columns stay as they were
    started = time.perf_counter()
    with psycopg.connect(libpq, autocommit=True) as conn:
        # Bulk load and index builds are admin work: not bound by the role's statement_timeout (migration 0003).
        conn.execute("SET statement_timeout = 0")
        register_vector(conn)
        register_enum(EnumInfo.fetch(conn, "item_status"), conn, ItemStatus)
        # The migration's indexes slow a bulk load down: drop them, load, build them again.
        index_defs = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'items' AND indexname LIKE 'ix_%'"
        ).fetchall()
        for name, _ in index_defs:
            conn.execute(f'DROP INDEX "{name}"')
        columns = (
            "id, owner_id, status, filename, original_key, content_type, bytes, width, height, format, sha256, "
            "thumbnail_keys, title, description, category, tags, colors, analysis_model, embedding_model, "
            "embedding, created_at, updated_at, ready_at"
        )
        types = [
            "uuid",
            "varchar",
            "item_status",
            "varchar",
            "varchar",
            "varchar",
            "int8",
            "int4",
            "int4",
            "varchar",
            "varchar",
            "jsonb",
            "varchar",
            "text",
            "varchar",
            "varchar[]",
            "varchar[]",
            "varchar",
            "varchar",
            "vector",
            "timestamptz",
            "timestamptz",
            "timestamptz",
        ]
        from psycopg.types.json import Jsonb

        with conn.cursor() as cur, cur.copy(f"COPY items ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(types)
            batch = 5000
            for start in range(0, TOTAL_ITEMS, batch):
                size = min(batch, TOTAL_ITEMS - start)
                labels = rng.integers(0, CLUSTERS, size)
                vectors = centers[labels] + 0.6 * rng.standard_normal((size, DIMENSION)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for offset in range(size):
                    n = start + offset
                    owner = owners[n]
                    item_id = uuid.UUID(int=pyrandom.getrandbits(128), version=4)
                    # The measured user has some items in flight or failed: no embedding for those.
                    ready = owner != USER or n % 10 != 0
                    status = "ready" if ready else pyrandom.choice(("pending", "processed", "failed"))
                    words = pyrandom.sample(WORDS, 4)
                    created = now - timedelta(seconds=pyrandom.randrange(365 * 86400))
                    thumbs = {s: f"thumbnails/{owner}/{item_id}/{s}.webp" for s in ("256", "1024")}
                    copy.write_row(
                        (
                            item_id,
                            owner,
                            ItemStatus(status),
                            "photo.jpg",
                            f"uploads/{owner}/{item_id}/photo.jpg",
                            "image/jpeg",
                            200_000,
                            1024,
                            768,
                            "JPEG",
                            f"{n:064x}",
                            Jsonb(thumbs) if status != "pending" else None,
                            " ".join(words[:2]).title(),
                            f"A photo of a {words[0]} near a {words[1]} with a {words[2]}",
                            RARE_CATEGORY if category_draw.random() < RARE_SHARE
                            else CATEGORIES[labels[offset] % len(CATEGORIES)],
                            words[1:4],
                            ["#aabbcc"],
                            "local-vision-v1" if ready else None,
                            "local-hash-v1" if ready else None,
                            vectors[offset] if ready else None,
                            created,
                            created,
                            created if ready else None,
                        )
                    )
        timings["load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        for name, definition in sorted(index_defs, key=lambda d: "hnsw" in d[1]):  # HNSW last
            step = time.perf_counter()
            conn.execute(definition)
            timings[f"index_{name}_s"] = time.perf_counter() - step
        conn.execute("VACUUM ANALYZE items")
        timings["indexes_s"] = time.perf_counter() - started
    return timings


# --- requests through the handler -----------------------------------------------------------
def _timed(handler: Callable, make_event: Callable[[int], dict], count: int) -> tuple[list[float], list[dict]]:
    from tests.services.api.lambda_events import LambdaContext

    context = LambdaContext()
    for n in range(WARMUP):
        handler(make_event(n), context)
    samples, responses = [], []
    for n in range(count):
        event = make_event(n)
        started = time.perf_counter()
        response = handler(event, context)
        samples.append((time.perf_counter() - started) * 1000)
        if response["statusCode"] != 200:
            raise RuntimeError(f"{event['rawPath']} answered {response['statusCode']}: {response.get('body')}")
        responses.append(response)
    return samples, responses


def _scenarios(user_item_ids: list[str], cursors: list[str]) -> dict[str, tuple[Callable[[int], dict], int]]:
    from tests.services.api.lambda_events import access_claims, http_api_event

    claims = access_claims(USER, CLIENT_ID)
    rng = random.Random(3)
    queries = [" ".join(rng.sample(WORDS, 3)) for _ in range(50)]

    def event(path: str, query: dict | None = None, route: str | None = None) -> dict:
        return http_api_event("GET", path, query=query, claims=claims, headers=AUTH_HEADERS, route_key=route)

    return {
        "GET /items": (lambda n: event("/items", {"limit": 20}), REQUESTS["list"]),
        "GET /items?cursor (page 5)": (
            lambda n: event("/items", {"limit": 20, "cursor": cursors[n % len(cursors)]}),
            REQUESTS["list"],
        ),
        "GET /items?filters": (
            lambda n: event(
                "/items", {"limit": 20, "status": "ready", "category": CATEGORIES[n % 8], "tag": WORDS[n % len(WORDS)]}
            ),
            REQUESTS["list"],
        ),
        "GET /items/{id}": (
            lambda n: event(f"/items/{user_item_ids[n % len(user_item_ids)]}", route="GET /items/{item_id}"),
            REQUESTS["get"],
        ),
        "GET /search": (lambda n: event("/search", {"q": queries[n % len(queries)], "k": 10}), REQUESTS["search"]),
        "GET /search?filters": (
            lambda n: event("/search", {"q": queries[n % len(queries)], "k": 10, "category": CATEGORIES[n % 8]}),
            REQUESTS["search"],
        ),
    }


class _JwksServer:
    """A JWKS document on 127.0.0.1 and tokens signed with its key: the jwks auth mode, for real."""

    def __init__(self):
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        document = json.dumps({"keys": [{**jwk, "kid": "bench", "alg": "RS256", "use": "sig"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def token(self, issuer: str) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": USER,
            "client_id": CLIENT_ID,
            "token_use": "access",
            "exp": now + 3600,
            "iat": now,
            "username": USER,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench"})

    def stop(self):
        self.server.shutdown()


def _plans(url: str, vector_text: str) -> dict[str, str]:
    import psycopg

    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    queries = {
        "list": "SELECT id FROM items WHERE owner_id = %(o)s AND status != 'deleted' "
        "ORDER BY created_at DESC, id DESC LIMIT 21",
        "search": "SELECT id FROM items WHERE owner_id = %(o)s AND status = 'ready' AND embedding IS NOT NULL "
        "ORDER BY embedding <=> %(v)s::vector LIMIT 10",
    }
    plans = {}
    with psycopg.connect(libpq) as conn:
        conn.execute(
            "SELECT set_config('hnsw.ef_search', '40', true), set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        )
        for name, sql in queries.items():
            rows = conn.execute("EXPLAIN (COSTS OFF) " + sql, {"o": USER, "v": vector_text}).fetchall()
            steps = [r[0].strip().lstrip("-> ").strip() for r in rows[:4]]
            plans[name] = " → ".join(s if len(s) < 160 else s[:70] + " ... " + s[-60:] for s in steps)
    return plans


def _near_data_queries(url: str, count: int) -> list[list[float]]:
    """Realistic queries: other users' stored embeddings moved a little (noise of norm 0.3)."""
    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector

    rng = np.random.default_rng(5)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT embedding FROM items WHERE owner_id != %s AND status = 'ready' ORDER BY id LIMIT %s", (USER, count)
        ).fetchall()
    queries = []
    for (vector,) in rows:
        query = vector.to_numpy() + 0.3 * rng.standard_normal(DIMENSION).astype(np.float32) / np.sqrt(DIMENSION)
        queries.append((query / np.linalg.norm(query)).tolist())
    return queries


def _recall(url: str, queries: list[list[float]], k: int = 10) -> float:
    """Recall@k of the HNSW search (iterative scan, as the API runs it) against exact search."""
    import psycopg

    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    where = "WHERE owner_id = %(o)s AND status = 'ready' AND embedding IS NOT NULL"
    approx_sql = f"SELECT id FROM items {where} ORDER BY embedding <=> %(v)s::vector LIMIT %(k)s"
    # "+ 0" keeps the planner off the HNSW index: an exact scan of the user's vectors.
    exact_sql = f"SELECT id FROM items {where} ORDER BY (embedding <=> %(v)s::vector) + 0 LIMIT %(k)s"
    found = total = 0
    with psycopg.connect(libpq) as conn:
        for vector in queries:
            text = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('hnsw.ef_search', '40', true), "
                    "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
                )
                approx = {r[0] for r in conn.execute(approx_sql, {"o": USER, "v": text, "k": k})}
            exact = {r[0] for r in conn.execute(exact_sql, {"o": USER, "v": text, "k": k})}
            if len(exact) != k:
                raise AssertionError(f"exact search returned {len(exact)} rows, expected {k}")
            found += len(approx & exact)
            total += len(exact)
    return found / total


def _exact_ids(url: str, vector: list[float], category: str, k: int = 10) -> list[str]:
    """Exact nearest neighbours by SQL (`+ 0` keeps the planner off the HNSW index)."""
    import psycopg

    text = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT id FROM items WHERE owner_id = %s AND status = 'ready' AND embedding IS NOT NULL "
            "AND category = %s ORDER BY (embedding <=> %s::vector) + 0, id LIMIT %s",
            (USER, category, text, k),
        ).fetchall()
    return [str(r[0]) for r in rows]


# The index each plan had: migration 0002's (owner) before, 0005's (owner, category) now.
_INDEXES = {
    "today": ("ix_items_owner_ready", "(owner_id)"),
    "now": ("ix_items_owner_ready_category", "(owner_id, category)"),
}


def _schema_of(url: str, label: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        for other, _ in _INDEXES.values():
            conn.execute(f"DROP INDEX IF EXISTS {other}")
        name, columns = _INDEXES[label]
        conn.execute(f"CREATE INDEX {name} ON items {columns} WHERE status = 'ready' AND embedding IS NOT NULL")
        conn.execute("ANALYZE items")


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _sql_times(url: str, vectors: list[list[float]], label: str) -> list[float]:
    """Server-side execution time (EXPLAIN ANALYZE) of the search statement each plan runs."""
    import psycopg

    where = ("WHERE owner_id = %(o)s AND status = 'ready' AND embedding IS NOT NULL AND category = %(c)s")
    order = "(embedding <=> %(v)s::vector) + 0, id" if label == "now" else "embedding <=> %(v)s::vector"
    sql = f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM items {where} ORDER BY {order} LIMIT 10"
    times = []
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for vector in vectors:
            text = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
            with conn.transaction():
                if label == "today":
                    conn.execute("SELECT set_config('hnsw.ef_search', '40', true), "
                                 "set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                plan = conn.execute(sql, {"o": USER, "c": RARE_CATEGORY, "v": text}).fetchone()[0]
            times.append(plan[0]["Execution Time"])
    return times


def _crossover_notes(url: str, vectors: list[list[float]]) -> list[str]:
    """Exact distances against the HNSW scan (ef_search 40, iterative relaxed_order) over more and
    more candidates of a content filter: the user's items in 2, 3, 4 of the categories, which the data
    ties to vector clusters as a real analysis would. SQL time and HNSW recall@10; the numbers behind
    services/api/queries.py CONTENT_FILTER_EXACT_FACTOR."""
    import psycopg

    where = "WHERE owner_id = %(o)s AND status = 'ready' AND embedding IS NOT NULL AND category = ANY(%(c)s)"
    orders = {"exact": "(embedding <=> %(v)s::vector) + 0, id", "hnsw": "embedding <=> %(v)s::vector"}
    notes = []
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for size in (2, 3, 4):
            categories = list(CATEGORIES[:size])
            params = {"o": USER, "c": categories}
            candidates = conn.execute(f"SELECT count(*) FROM items {where}", params).fetchone()[0]
            found, times = {}, {}
            for plan, order in orders.items():
                found[plan], times[plan] = [], []
                for vector in vectors:
                    text = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
                    with conn.transaction():
                        conn.execute("SELECT set_config('hnsw.ef_search', '40', true), "
                                     "set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                        started = time.perf_counter()
                        ids = conn.execute(f"SELECT id FROM items {where} ORDER BY {order} LIMIT 10",
                                           {**params, "v": text}).fetchall()
                        times[plan].append((time.perf_counter() - started) * 1000)
                    found[plan].append({r[0] for r in ids})
            recall = sum(len(a & e) for a, e in zip(found["hnsw"], found["exact"], strict=True)) / sum(
                len(e) for e in found["exact"])
            notes.append(
                f"content filter over {candidates:,} candidates ({size} categories): exact p50 "
                f"{_pct(times['exact'], 50):.1f} p95 {_pct(times['exact'], 95):.1f} ms; planner's choice without "
                f"`+ 0` p50 {_pct(times['hnsw'], 50):.1f} p95 {_pct(times['hnsw'], 95):.1f} ms, recall@10 {recall:.2f}"
            )
    return notes


@contextmanager
def _query_embedder(embed: Callable[[str], list[float]]) -> Iterator[None]:
    """Search with `embed` as the query embedder, through the handler as it runs in production.

    Swapped at its factory (services.core.ai.get_embedder, which the api's dependency calls), not
    with FastAPI's `app.dependency_overrides`: while any override is set, FastAPI rebuilds the
    dependant of every sub-dependency of every request (fastapi/dependencies/utils.py,
    solve_dependencies), which cost 5-7 ms per request here: the figure would be FastAPI's, not
    the search's.
    """
    from services.core import ai

    class Embedder:
        model, dimension = "near-data", DIMENSION

        def embed_query(self, text: str) -> list[float]:
            return embed(text)

    embedder = Embedder()
    original = ai.get_embedder
    ai.get_embedder = lambda settings=None: embedder
    try:
        yield
    finally:
        ai.get_embedder = original


def _filtered_search_rows(url: str, handler: Callable, near_queries: list, notes: list[str]) -> list[dict]:
    """GET /search?category=<1% category> through the handler: today's plan (the candidate count
    ignored filters, so a large collection always took the HNSW scan) beside the current one
    (count after filters: exact distances over the few candidates). p95 and recall@10 vs exact."""
    from services.api import queries
    from tests.services.api.lambda_events import access_claims, http_api_event

    claims = access_claims(USER, CLIENT_ID)
    calls = {"n": 0}

    def embed(text: str) -> list[float]:
        calls["n"] += 1
        return near_queries[calls["n"] % len(near_queries)]

    def make_event(n: int) -> dict:
        return http_api_event("GET", "/search", query={"q": f"query {n}", "k": 10, "category": RARE_CATEGORY},
                              claims=claims, headers=AUTH_HEADERS)

    current = queries.candidate_count

    def unfiltered_count(session, owner_id, filters, exclude=None):  # the plan choice before this change
        return current(session, owner_id, queries.ItemFilters(), None)

    rows, summary = [], {}
    try:
        for label, count_function in (("today", unfiltered_count), ("now", current)):
            queries.candidate_count = count_function
            _schema_of(url, label)  # today's indexes for today's plan: the planner sees what it saw then
            sql_ms = _sql_times(url, near_queries[:20], label)
            calls["n"] = -1
            with _query_embedder(embed):
                samples, responses = _timed(handler, make_event, REQUESTS["search"])
            # The timed calls used near_queries[(WARMUP + i) % len]: check the first 20 against exact search.
            found = total = 0
            for i, response in enumerate(responses[:20]):
                vector = near_queries[(WARMUP + i) % len(near_queries)]
                got = [hit["id"] for hit in json.loads(response["body"])["items"]]
                exact = _exact_ids(url, vector, RARE_CATEGORY)
                found += len(set(got) & set(exact))
                total += len(exact)
            recall = found / total
            stats = _percentiles(samples)
            ok = stats["p95_ms"] <= FILTERED_TARGET_P95_MS and recall >= FILTERED_MIN_RECALL
            rows.append({
                "request": f"GET /search?category (1%), {label}'s plan",
                "auth": "apigateway",
                **stats,
                "results": f"recall@10 {recall:.2f}; SQL p50 {_pct(sql_ms, 50):.1f} p95 {_pct(sql_ms, 95):.1f} ms",
                "target_p95_ms": FILTERED_TARGET_P95_MS,
                "ok": "yes" if ok else "NO",
            })
            summary[label] = (stats["p95_ms"], recall, _pct(sql_ms, 95))
    finally:
        queries.candidate_count = current
        _schema_of(url, "now")
    from services.core.database import session_scope

    with session_scope() as session:
        candidates = queries.candidate_count(session, USER, queries.ItemFilters(category=RARE_CATEGORY))
        plan = queries.search_plan(session, USER, queries.ItemFilters(category=RARE_CATEGORY))
    notes.append(
        f"filtered search: {candidates} of the user's ready items are in {RARE_CATEGORY!r}; today's plan scans "
        f"HNSW (ef_search 40, iterative relaxed_order) past other users' and other categories' vectors; "
        f"the current plan is {plan!r} (no session settings needed for it)"
    )
    _SUMMARY.append({
        "measure": "search with a 1% category filter, p95 (recall@10 vs exact)",
        "today": f"{summary['today'][0]:.0f} ms (recall {summary['today'][1]:.2f}; SQL {summary['today'][2]:.1f} ms)",
        "now": f"{summary['now'][0]:.0f} ms (recall {summary['now'][1]:.2f}; SQL {summary['now'][2]:.1f} ms)",
        "target": f"≤ {FILTERED_TARGET_P95_MS:.0f} ms (≥ {FILTERED_MIN_RECALL})",
        "ok": rows[-1]["ok"],
    })
    return rows


_SUMMARY: list[dict] = []


def run() -> dict:
    from services.local.aws import FAKE_CREDENTIALS
    from services.local.postgres import start

    notes: list[str] = [
        f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    ]
    rows: list[dict] = []
    workdir = Path(tempfile.mkdtemp(prefix="collections-bench-api-"))
    server = start(workdir / "data", delete_on_stop=True)
    jwks = _JwksServer()
    AUTH_HEADERS["authorization"] = f"Bearer {jwks.token(ISSUER)}"
    try:
        url = server.create_database("bench_api", exist_ok=False)
        env = {
            **FAKE_CREDENTIALS,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DATABASE_URL": url,
            "COLLECTIONS_AUTH_MODE": "apigateway",
            "COLLECTIONS_COGNITO_USER_POOL_ID": "us-east-1_bench",
            "COLLECTIONS_COGNITO_CLIENT_ID": CLIENT_ID,
            "COLLECTIONS_COGNITO_JWKS_URL": jwks.url,
            "COLLECTIONS_COGNITO_ISSUER": ISSUER,
            "COLLECTIONS_EMBEDDING_DIMENSION": str(DIMENSION),
            # One user sends thousands of requests here: the per-user limits would answer 429.
            "COLLECTIONS_LIMIT_SEARCHES_PER_MINUTE": "0",
            "COLLECTIONS_LIMIT_UPLOADS_PER_DAY": "0",
            "COLLECTIONS_LIMIT_PENDING_UPLOADS": "0",
        }
        for key in ("VOYAGE_API_KEY", "ANTHROPIC_API_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
            os.environ.pop(key, None)
        os.environ.update(env)

        from services.core import database, migrations
        from services.core.settings import get_settings

        get_settings.cache_clear()
        database.reset()
        migrations.upgrade(url)
        timings = _load(url)
        notes.append(
            f"loaded {TOTAL_ITEMS:,} items ({USER_ITEMS:,} of the measured user, 90% of them ready) with "
            f"{DIMENSION}-d embeddings in {timings['load_s']:.1f} s (binary COPY); indexes rebuilt in "
            f"{timings['indexes_s']:.1f} s, of which HNSW {timings.get('index_ix_items_embedding_hnsw_s', 0):.1f} s"
        )

        from services.api.handler import handler
        from tests.services.api.lambda_events import LambdaContext, access_claims, http_api_event

        # Ids and cursors to request, taken through the API itself.
        claims = access_claims(USER, CLIENT_ID)
        first = json.loads(
            handler(
                http_api_event("GET", "/items", query={"limit": 100}, claims=claims, headers=AUTH_HEADERS),
                LambdaContext(),
            )["body"]
        )
        user_item_ids = [i["id"] for i in first["items"]]
        cursors, cursor = [], None
        for _ in range(5):
            page = json.loads(
                handler(
                    http_api_event(
                        "GET",
                        "/items",
                        query={"limit": 20, **({"cursor": cursor} if cursor else {})},
                        claims=claims,
                        headers=AUTH_HEADERS,
                    ),
                    LambdaContext(),
                )["body"]
            )
            cursor = page["next_cursor"]
        cursors.append(cursor)

        for name, (make_event, count) in _scenarios(user_item_ids, cursors).items():
            samples, responses = _timed(handler, make_event, count)
            results = len(json.loads(responses[-1]["body"])["items"]) if "items" in responses[-1]["body"] else 1
            stats = _percentiles(samples)
            target = TARGET_P95_MS.get(name)
            rows.append(
                {
                    "request": name,
                    "auth": "apigateway",
                    **stats,
                    "results": results,
                    "target_p95_ms": target,
                    "ok": "" if target is None else ("yes" if stats["p95_ms"] <= target else "NO"),
                }
            )

        # Search again with query vectors near the data (what a real embedder yields for a query that
        # matches the collection), through the same handler with the embedder port swapped.
        near_queries = _near_data_queries(url, 50)
        near_calls = itertools.count(1)
        make_event, count = _scenarios(user_item_ids, cursors)["GET /search"]
        with _query_embedder(lambda text: near_queries[next(near_calls) % len(near_queries)]):
            samples, _ = _timed(handler, make_event, count)
        stats = _percentiles(samples)
        rows.append(
            {
                "request": "GET /search (query near the data)",
                "auth": "apigateway",
                **stats,
                "results": 10,
                "target_p95_ms": 30.0,
                "ok": "yes" if stats["p95_ms"] <= 30.0 else "NO",
            }
        )

        rows += _filtered_search_rows(url, handler, near_queries, notes)
        notes += _crossover_notes(url, near_queries[:20])

        # The same item reads with full RS256 verification (JWKS cached after the first request).
        os.environ["COLLECTIONS_AUTH_MODE"] = "jwks"
        get_settings.cache_clear()
        token = jwks.token(ISSUER)
        samples, _ = _timed(
            handler,
            lambda n: http_api_event(
                "GET",
                f"/items/{user_item_ids[n % len(user_item_ids)]}",
                headers={"authorization": f"Bearer {token}"},
                route_key="GET /items/{item_id}",
            ),
            REQUESTS["get"],
        )
        stats = _percentiles(samples)
        rows.append(
            {
                "request": "GET /items/{id}",
                "auth": "jwks (RS256)",
                **stats,
                "results": 1,
                "target_p95_ms": 15.0,
                "ok": "yes" if stats["p95_ms"] <= 15.0 else "NO",
            }
        )
        os.environ["COLLECTIONS_AUTH_MODE"] = "apigateway"
        get_settings.cache_clear()

        from services.core.ai.local import LocalEmbedder

        embedder = LocalEmbedder(DIMENSION)
        recall_queries = [embedder.embed_query(" ".join(random.Random(q).sample(WORDS, 3))) for q in range(20)]
        notes.append(
            f"search recall@10 vs exact search (ef_search 40, iterative relaxed_order), 20 queries each: "
            f"{_recall(url, near_queries[:20]):.2f} for queries near the data (a stored embedding plus noise), "
            f"{_recall(url, recall_queries):.2f} for the benchmark's text queries, which the local hash embedder "
            "puts far from these synthetic clusters (every item nearly equidistant: the worst case for HNSW)"
        )
        vector_text = "[" + ",".join(f"{x:.6f}" for x in recall_queries[0]) + "]"
        for name, plan in _plans(url, vector_text).items():
            notes.append(f"plan {name}: {plan}")

        notes.append("cold starts (import, first request) are measured from the real artifact: bench_coldstart")
        notes.append(
            f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the "
            "machine inflates every figure; p50 is the least affected)"
        )
    finally:
        if jwks:
            jwks.stop()
        from services.core import database

        database.reset()
        server.stop()
    return {
        "title": "API latency through the Lambda handler (Mangum → FastAPI → PostgreSQL)",
        "rows": rows,
        "notes": notes,
        "summary": _SUMMARY,
    }
