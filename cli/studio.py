"""`deepbow studio`: a small local web page to search an index, see why each product scored as
it did, and edit weights with the ranking updating at once.

Standard library only (http.server, threads) and one plain HTML/JS page (studio.html), no build
step. It serves 127.0.0.1 unless another host is asked for explicitly. Every edit goes through
the same Editor as the CLI and Python (index/editor.py), so the journal, validation and undo are
shared; a refused edit comes back as HTTP 400 with the reason.

    GET  /                          the page
    GET  /api/search?q=&k=&scorer=  ranked hits: words with contributions, entities (EBRM)
    GET  /api/log                   the journal, newest last, with what is in force
    POST /api/edit   {"op": "set"|"scale"|"ban"|"link"|"unlink"|"pin"|"rule", ...}
    POST /api/undo   {"seq": n}
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from deepbow.errors import DeepBowError

PAGE = Path(__file__).with_name("studio.html")


class Studio:
    """The state behind the page: one catalogue, optionally EBRM and the hybrid."""

    def __init__(self, catalogue, hybrid=None, user: str | None = None) -> None:
        self.cat = catalogue
        self.hybrid = hybrid
        self.user = user
        self.lock = threading.Lock()  # one request at a time touches the models

    def search(self, q: str, k: int = 10, scorer: str = "deepbow") -> dict:
        from deepbow.encoder import LABEL_NAMES

        if not q.strip():
            return {"query": q, "hits": [], "scorer": scorer}
        with self.lock:
            ranked = self.cat.rerank(q, k, scorer, self.hybrid) if scorer != "deepbow" \
                else [(h, h.score) for h in self.cat.search(q, k)]
            hits = []
            for h, score in ranked:
                ex = self.cat.explain(q, h.id)
                over = self.cat.edits().overlay.get(self.cat.id_map()[h.id], {})
                vocab = self.cat.model.vocab
                edited = {vocab.term_name(t) for t in over}
                row = {"id": h.id, "title": h.title, "score": score,
                       "deepbow_score": h.score,
                       "label": LABEL_NAMES[int(self.cat.model.label([h.score])[0])],
                       "words": [{"word": r.word, "query_weight": r.query_weight,
                                  "title_weight": r.title_weight,
                                  "contribution": r.contribution,
                                  "expanded": r.query_expanded, "edited": r.word in edited}
                                 for r in ex.rows]}
                if self.cat.ebrm is not None:
                    row["entities"] = self.cat.entity_explain(q, h.id).to_json()
                hits.append(row)
        return {"query": q, "hits": hits, "scorer": scorer}

    def edit(self, body: dict) -> dict:
        op = body.get("op")
        by = body.get("by") or self.user
        reason = body.get("reason", "")
        ed = self.cat.editor
        with self.lock:
            if op == "set":
                return ed.set_weight(body.get("item"), body.get("word", ""), body.get("weight"),
                                     by=by, reason=reason, create=bool(body.get("create")),
                                     query=body.get("query"))
            if op == "scale":
                return ed.scale(body.get("word", ""), body.get("factor"), by=by, reason=reason,
                                create=bool(body.get("create")), query=body.get("query"))
            if op == "ban":
                return ed.ban(body.get("word", ""), by=by, reason=reason,
                              create=bool(body.get("create")), query=body.get("query"))
            if op == "link":
                return ed.link(body.get("from", ""), body.get("to", ""),
                               body.get("weight", 1.0), by=by, reason=reason,
                               create=bool(body.get("create")), query=body.get("query"))
            if op == "unlink":
                return ed.unlink(body.get("from", ""), body.get("to", ""), by=by,
                                 reason=reason)
            if op == "pin":
                return ed.pin(body.get("query_pattern", ""), body.get("type", ""),
                              body.get("entity", ""), body.get("s"), body.get("c"), by=by,
                              reason=reason, query=body.get("query"))
            if op == "rule":
                return ed.rule(body.get("category", ""), body.get("type", ""),
                               body.get("mode"), by=by, reason=reason, query=body.get("query"))
        from index.edits import EditError

        raise EditError(f"unknown edit {op!r}")

    def undo(self, body: dict) -> dict:
        seq = body.get("seq")
        with self.lock:
            return self.cat.editor.undo(int(seq) if str(seq).isdigit() else seq,
                                        by=body.get("by") or self.user,
                                        reason=body.get("reason", ""))

    def log(self) -> dict:
        from index.edits import describe, replay

        records = self.cat.editor.log()
        active = replay(records).active
        return {"edits": [{**r, "text": describe(r), "active": r["seq"] in active}
                          for r in records]}


def make_handler(studio: Studio):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet: the page is interactive
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj) -> None:
            self._send(code, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                       "application/json; charset=utf-8")

        def _guard(self, fn) -> None:
            try:
                self._json(200, fn())
            except (DeepBowError, ValueError, TypeError) as e:
                self._json(400, {"error": str(e)})
            except Exception as e:  # a bug: say so rather than drop the connection
                self._json(500, {"error": f"internal error: {type(e).__name__}: {e}"})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            qs = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path in ("/", "/index.html"):
                self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
            elif url.path == "/api/search":
                self._guard(lambda: studio.search(qs.get("q", ""), int(qs.get("k", "10")),
                                                  qs.get("scorer", "deepbow")))
            elif url.path == "/api/log":
                self._guard(studio.log)
            elif url.path == "/api/info":
                self._guard(lambda: {"ebrm": studio.cat.ebrm is not None,
                                     "hybrid": studio.hybrid is not None,
                                     "index": str(studio.cat.path)})
            else:
                self._json(404, {"error": f"no such page {url.path}"})

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(n).decode("utf-8") or "{}")
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                self._json(400, {"error": f"request body is not JSON ({e})"})
                return
            if not isinstance(body, dict):
                self._json(400, {"error": "request body must be a JSON object"})
            elif self.path == "/api/edit":
                self._guard(lambda: studio.edit(body))
            elif self.path == "/api/undo":
                self._guard(lambda: studio.undo(body))
            else:
                self._json(404, {"error": f"no such endpoint {self.path}"})

    return Handler


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A started server (in a daemon thread); .shutdown() stops it."""
    server = ThreadingHTTPServer((host, port), make_handler(studio))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
