"""The studio: a small local web page to search an index, see why each product scored as it
did, and edit weights with the ranking updating at once (`deepbow studio`).

Standard library only (http.server, threads) and one plain HTML/JS page (studio.html), no build
step. Every edit goes through the same Editor as the CLI and Python (index/editor.py), so the
journal, validation and undo are shared; a refused edit comes back as HTTP 400 with the reason.

It writes to the index, so only its user may drive it: the Host header must name the address it
serves (a loopback name, or the host it was started on), and a POST must carry the per-launch
token the page holds, as JSON, from no other origin. A web page the user happens to visit can
neither read the token nor send a JSON POST without it. Bodies are bounded in size, nesting and
time; a new manifest (another process's `index add` or `compact`) is picked up at the next call.

    GET  /                          the page
    GET  /api/search?q=&k=&scorer=  ranked hits: words with contributions, entities (EBRM)
    GET  /api/log                   the journal, newest last, with what is in force
    GET  /api/info                  which scorers are available
    POST /api/edit   {"op", "args": {...}, "query", "by", "reason", "create"}
    POST /api/undo   {"seq", "by", "reason"}
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from deepbow.errors import DeepBowError, InputError
from deepbow.explain import LABEL_NAMES
from deepbow.readers import parse_json
from index.editor import Editor
from index.edits import active_seqs, describe
from index.rerank import SCORERS

PAGE = Path(__file__).with_name("studio.html")
MAX_BODY = 64 * 1024
MAX_K = 200
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class Studio:
    """The state behind the page: one catalogue, and a Reranker (index/rerank.py) when EBRM
    is loaded. `token` is the secret of this launch, embedded in the page. `served`: where
    rankings and explanations come from when not the catalogue itself (its Milvus copy,
    index/milvus_catalogue.py); edits always go through the catalogue's Editor, then
    `after_edit()` (e.g. keeping the copy in step)."""

    def __init__(self, catalogue, reranker=None, user: str | None = None, served=None,
                 after_edit=None) -> None:
        self.cat = catalogue
        self.served = served if served is not None else catalogue
        self.reranker = reranker
        self.editor = Editor(catalogue, reranker)
        self.user = user
        self.after_edit = after_edit
        self.token = secrets.token_urlsafe(24)
        self.lock = threading.Lock()  # one request at a time touches the models

    def search(self, q: str, k: int = 10, scorer: str = "deepbow") -> dict:
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InputError(f"k must be a whole number from 1 to {MAX_K}")
        if scorer not in SCORERS:
            raise InputError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
        if not q.strip():
            return {"query": q, "hits": [], "scorer": scorer}
        with self.lock:
            edits = self.cat.journal_edits()  # one view of the index for the whole answer
            if scorer == "deepbow":
                ranked = [(h, h.score) for h in self.served.search(q, k, edits=edits)]
            elif self.reranker is None:
                raise InputError(f"scorer {scorer!r} needs EBRM (start the studio with --ebrm)")
            else:
                ranked = self.reranker.rerank(q, k, scorer, edits=edits)
            qv = self.served.query_vectors([q], edits)[0] if ranked else None
            return {"query": q, "scorer": scorer,
                    "hits": [self._hit(q, h, score, edits, qv) for h, score in ranked]}

    def _hit(self, q: str, h, score: float, edits, qv) -> dict:
        ex = self.served.explain(q, h.id, edits, qv=qv)  # the query encoded once, not per hit
        over = edits.overlay.get(self.cat.id_map().get(h.id, -1), {})
        edited = {self.cat.model.vocab.term_name(t) for t in over}
        row = {"id": h.id, "title": h.title, "score": score, "deepbow_score": h.score,
               "label": LABEL_NAMES[int(self.cat.model.label([h.score])[0])],
               "words": [{"word": r.word, "query_weight": r.query_weight,
                          "title_weight": r.title_weight, "contribution": r.contribution,
                          "expanded": r.query_expanded, "edited": r.word in edited}
                         for r in ex.rows]}
        if self.reranker is not None:
            row["entities"] = self.reranker.entity_explain(q, h.id, edits).to_json()
        return row

    def edit(self, body: dict) -> dict:
        with self.lock:
            rec = self.editor.apply(body.get("op"), body.get("args"), body.get("by") or self.user,
                                    body.get("reason", ""), body.get("query"),
                                    create=body.get("create", False))
            return self._after_edit(rec)

    def undo(self, body: dict) -> dict:
        with self.lock:
            rec = self.editor.apply("undo", {"target": body.get("seq")},
                                    body.get("by") or self.user, body.get("reason", ""))
            return self._after_edit(rec)

    def _after_edit(self, rec: dict) -> dict:
        """The record, with a warning when the follow-up failed (the edit itself stands)."""
        if self.after_edit is None:
            return rec
        try:
            self.after_edit()
        except DeepBowError as e:
            return {**rec, "warning": f"edit #{rec['seq']} is recorded, but {e}"}
        return rec

    def log(self) -> dict:
        records = self.editor.log()
        active = active_seqs(records)
        return {"edits": [{**r, "text": describe(r), "active": r["seq"] in active}
                          for r in records]}

    def info(self) -> dict:
        return {"ebrm": self.reranker is not None,
                "hybrid": self.reranker is not None and self.reranker.hybrid is not None,
                "index": str(self.cat.path),
                "backend": "local" if self.served is self.cat else "milvus"}


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StudioHandler(BaseHTTPRequestHandler):
    """The studio's HTTP handler; make_handler binds it to one Studio and address."""

    studio: Studio
    allowed_hosts: frozenset[str] = frozenset()
    allowed_origins: frozenset[str] = frozenset()
    timeout = 10  # seconds a client may take to send its request

    def log_message(self, fmt, *args):  # quiet: the page is interactive
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _guard(self, fn) -> None:
        try:
            self._check_host()
            self._json(200, fn())
        except _Refused as e:
            self._json(e.code, {"error": str(e)})
        except (DeepBowError, ValueError, TypeError, OverflowError) as e:
            self._json(400, {"error": str(e)})
        except Exception as e:  # a bug: say so rather than drop the connection
            self._json(500, {"error": f"internal error: {type(e).__name__}: {e}"})

    def _check_host(self) -> None:
        if self.headers.get("Host", "") not in self.allowed_hosts:
            raise _Refused(403, "unexpected Host header: the studio answers only on "
                                "the address it serves")

    def _body(self) -> dict:
        """The request's JSON object, after the checks a cross-site request fails."""
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins:
            raise _Refused(403, f"requests from {origin} are not accepted")
        if self.headers.get("X-Deepbow-Token") != self.studio.token:
            raise _Refused(403, "missing or wrong studio token (reload the page)")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/json":
            raise _Refused(415, "the body must be application/json")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise _Refused(413 if length.isdigit() else 411,
                           f"Content-Length must be a number of bytes up to {MAX_BODY}")
        try:
            raw = self.rfile.read(int(length))
        except TimeoutError:
            raise _Refused(408, "the body did not arrive in time") from None
        if len(raw) != int(length):
            raise _Refused(400, "the body is shorter than its Content-Length")
        body = parse_json(raw.decode("utf-8", errors="replace"), "request body")
        if not isinstance(body, dict):
            raise _Refused(400, "request body must be a JSON object")
        return body

    def do_GET(self) -> None:
        url = urlparse(self.path)
        qs = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path in ("/", "/index.html"):
            try:
                self._check_host()
            except _Refused as e:
                self._json(e.code, {"error": str(e)})
                return
            page = PAGE.read_text(encoding="utf-8").replace("{{TOKEN}}", self.studio.token)
            self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")
        elif url.path == "/api/search":
            self._guard(lambda: self.studio.search(qs.get("q", ""), _int(qs.get("k", "10")),
                                                   qs.get("scorer", "deepbow")))
        elif url.path == "/api/log":
            self._guard(self.studio.log)
        elif url.path == "/api/info":
            self._guard(self.studio.info)
        else:
            self._json(404, {"error": f"no such page {url.path}"})

    def do_POST(self) -> None:
        routes = {"/api/edit": self.studio.edit, "/api/undo": self.studio.undo}
        fn = routes.get(urlparse(self.path).path)
        if fn is None:
            self._json(404, {"error": f"no such endpoint {self.path}"})
            return
        self._guard(lambda: fn(self._body()))



def make_handler(studio: Studio, host: str, port: int) -> type[StudioHandler]:
    hosts = frozenset(f"{h}:{port}" for h in (*LOOPBACK, host))
    return type("Handler", (StudioHandler,), {
        "studio": studio, "allowed_hosts": hosts,
        "allowed_origins": frozenset(f"http://{h}" for h in hosts)})


def _int(text: str) -> int:
    if not text.isdigit() or len(text) > 6:
        raise InputError(f"k must be a whole number from 1 to {MAX_K}, got {text!r}")
    return int(text)


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A started server (in a daemon thread); .shutdown() stops it. A port that is in use or
    out of range is an InputError."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port {port} is not a TCP port (0–65535)")
    try:
        server = ThreadingHTTPServer((host, port), make_handler(studio, host, port))
    except OSError as e:
        raise InputError(f"cannot serve on {host}:{port} ({e.strerror})") from None
    if port == 0:  # the real port is known only now
        server.RequestHandlerClass = make_handler(studio, host, server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
