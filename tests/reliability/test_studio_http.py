"""The studio driven with raw HTTP as a hostile web page or client would: only its user's
page, on its own address, with the launch's token, as JSON, within bounds, can edit."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse

import pytest

from index.catalogue import Catalogue
from index.studio import Studio, serve


@pytest.fixture
def studio(cat):
    st = Studio(cat, None, user="tester")
    srv = serve(st, "127.0.0.1", 0)
    srv.RequestHandlerClass.timeout = 1  # seconds a client may take (10 when served)
    yield st, srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def raw(port: int, data: bytes) -> tuple[int, dict | str]:
    """Send bytes, return (status, JSON body or text)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def request(port: int, method: str, path: str, body: bytes | dict | None = None,
            **headers: str | None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    hdr = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
           "Content-Length": str(len(data)), "Connection": "close"}
    hdr.update({k.replace("_", "-"): v for k, v in headers.items()})
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdr.items() if v is not None]
    return raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + data)


EDIT = {"op": "ban", "args": {"word": "包邮"}}


def test_only_the_page_of_this_launch_on_this_address_may_edit(studio):
    st, port = studio
    token = {"X_Deepbow_Token": st.token}
    refused = [
        ({"Host": "evil.example"}, 403, "Host"),
        ({"Host": f"evil.example:{port}"}, 403, "Host"),  # DNS rebinding
        ({"Host": None}, 403, "Host"),
        ({"Origin": "http://evil.example"}, 403, "not accepted"),
        ({"Origin": "null"}, 403, "not accepted"),
        ({"Origin": f"http://127.0.0.1:{port + 1}"}, 403, "not accepted"),
        ({"X_Deepbow_Token": None}, 403, "token"),
        ({"X_Deepbow_Token": "guess"}, 403, "token"),
        ({"Content_Type": "text/plain"}, 415, "application/json"),
        ({"Content_Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({"Content_Type": None}, 415, "application/json"),
    ]
    for headers, code, message in refused:
        status, body = request(port, "POST", "/api/edit", EDIT, **{**token, **headers})
        assert status == code and message in body["error"], headers
    assert st.editor.log() == []
    page = request(port, "GET", "/")[1]
    assert st.token in page
    assert request(port, "GET", "/", Host="evil.example")[0] == 403
    status, rec = request(port, "POST", "/api/edit", EDIT, Origin=f"http://127.0.0.1:{port}",
                          **token)
    assert status == 200 and rec["by"] == "tester"


@pytest.mark.parametrize("body,headers,code,message", [
    (b"{}", {"Content_Length": "abc"}, 411, "Content-Length"),
    (b"{}", {"Content_Length": "-5"}, 411, "Content-Length"),
    (b"{}", {"Content_Length": None}, 411, "Content-Length"),
    (b"{}", {"Content_Length": str(10**12)}, 413, "Content-Length"),
    (b"{" + b" " * 70000 + b"}", {}, 413, "Content-Length"),
    (b"{}", {"Content_Length": "100"}, 408, "did not arrive"),  # a short body: no hang
    (b"[" * 30000 + b"]" * 30000, {}, 400, "not valid JSON"),
    (b'{"op": "ban", "args": {"word": "' + b"[" * 5000 + b'"}}', {}, 400, "at most 500"),
    (b"\xff\xfe\x00", {}, 400, "not valid JSON"),
    (b"[1, 2]", {}, 400, "JSON object"),
    (b'{"op": "set", "args": {"item": "a1", "word": "x", "weight": 1e999}}', {}, 400,
     "finite number"),
])
def test_bodies_are_bounded_in_size_depth_and_time(studio, body, headers, code, message):
    st, port = studio
    status, reply = request(port, "POST", "/api/edit", body, X_Deepbow_Token=st.token,
                            **headers)
    assert status == code and message in reply["error"]
    assert st.editor.log() == []


@pytest.mark.parametrize("body,message", [
    ({**EDIT, "reason": "x" * 5000}, "at most 500"),
    ({**EDIT, "reason": {"a": 1}}, "reason must be"),
    ({**EDIT, "by": ["x"]}, "by must be"),
    ({**EDIT, "create": "false"}, "create must be true or false"),
    ({**EDIT, "query": 5}, "sample query must be a string"),
    ({"op": "set", "args": {"item": "a1", "word": "华为", "weight": "0.5"}}, "must be a number"),
    ({"op": "set", "args": {"item": "a1", "word": "华为", "weight": True}}, "must be a number"),
    ({"op": "set", "args": {"item": "a1", "word": "华为", "weight": 1e308}}, "above the largest"),
    ({"op": "set", "args": {"item": "a1", "word": "华为", "weight": -1}}, "finite number"),
    ({"op": 5, "args": []}, "unknown edit"),
    ({"op": "ban"}, "must be an object"),
    ({"op": "ban", "args": {"word": "包邮", "x": 1}}, "takes no argument"),
])
def test_edits_are_validated_as_the_cli_validates_them(studio, body, message):
    st, port = studio
    status, reply = request(port, "POST", "/api/edit", body, X_Deepbow_Token=st.token)
    assert status == 400 and message in reply["error"]
    for seq in ("1", 10**30, None, True):
        status, reply = request(port, "POST", "/api/undo", {"seq": seq},
                                X_Deepbow_Token=st.token)
        assert status == 400
    assert st.editor.log() == []


@pytest.mark.parametrize("query", ["k=" + "9" * 23, "k=0", "k=-1", "k=abc", "k=201",
                                   "k=5&scorer=ebrm", "k=5&scorer=zzz"])
def test_search_arguments_are_bounded(studio, query):
    _, port = studio
    status, reply = request(port, "GET", "/api/search?q=%E6%89%8B%E6%9C%BA&" + query)
    assert status == 400 and "error" in reply


def test_the_studio_follows_cli_changes_and_survives_compactions(studio, tiny_model):
    st, port = studio
    other = Catalogue.open(st.cat.path, tiny_model)  # another process's writes, in effect
    other.add([{"id": "new1", "title": "华为手机正品"}])
    q = "/api/search?q=" + urllib.parse.quote("华为手机") + "&k=10"
    assert "new1" in [h["id"] for h in request(port, "GET", q)[1]["hits"]]
    status, rec = request(port, "POST", "/api/edit", {"op": "set", "args": {
        "item": "new1", "word": "华为", "weight": 0.1}}, X_Deepbow_Token=st.token)
    assert status == 200
    errors: list = []
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            status, reply = request(port, "GET", q)
            if status != 200:
                errors.append(reply)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            other.delete([other.item(next(iter(other.id_map().values())))["id"]])
            other.add([{"id": f"more{i}", "title": "小米手机"}])
            other.compact()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    ids = [h["id"] for h in request(port, "GET", q)[1]["hits"]]
    assert ids == [h.id for h in other.search("华为手机", k=10)]
