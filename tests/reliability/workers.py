"""Processes of the concurrency test (started with spawn: torch does not survive a fork)."""

from __future__ import annotations

import json
import random

from tests.conftest import BRANDS, PRODUCTS

OPS = ["add"] * 3 + ["delete", "update", "compact", "set", "set", "scale", "search", "search"]


def writer(path: str, model_dir: str, wid: int, m: int, log_path: str) -> None:
    """`m` random operations on the index at `path`, through one long-lived Catalogue (as a
    server would hold it); each acknowledged one is logged with what it changed."""
    import torch

    torch.set_num_threads(1)
    from deepbow.encoder import DeepBoW
    from index.catalogue import Catalogue

    rng = random.Random(wid)
    cat = Catalogue.open(path, DeepBoW.load(model_dir))
    mine: list[str] = []
    with open(log_path, "a", encoding="utf-8") as log:
        for j in range(m):
            op = rng.choice(OPS)
            try:
                entry = _one(cat, op, rng, wid, j, mine)
            except Exception as e:  # noqa: BLE001 - every failure is reported to the test
                entry = {"op": "error", "during": op, "error": f"{type(e).__name__}: {e}"}
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            log.flush()


def _title(rng: random.Random) -> str:
    return rng.choice(BRANDS) + rng.choice(["新款", "正品", "包邮"]) + rng.choice(PRODUCTS)


def _one(cat, op: str, rng: random.Random, wid: int, j: int, mine: list[str]) -> dict:
    if op in ("delete", "update", "set") and not mine:
        op = "add"
    if op == "add":
        items = [{"id": f"w{wid}-{j}-{x}", "title": _title(rng)} for x in range(rng.randint(1, 3))]
        cat.add(items)
        mine.extend(it["id"] for it in items)
        return {"op": "add", "items": items}
    if op == "delete":
        iid = mine.pop(rng.randrange(len(mine)))
        cat.delete([iid])
        return {"op": "delete", "id": iid}
    if op == "update":
        item = {"id": rng.choice(mine), "title": _title(rng)}
        cat.update([item])
        return {"op": "update", "items": [item]}
    if op == "compact":
        cat.compact()
        return {"op": "compact"}
    if op == "set":
        rec = cat.editor.set_weight(rng.choice(mine), rng.choice(BRANDS + PRODUCTS),
                                    round(rng.uniform(0.0, 1.0), 3), by=f"w{wid}")
        return {"op": "set", "seq": rec["seq"], "args": rec["args"]}
    if op == "scale":
        rec = cat.editor.scale(rng.choice(BRANDS), round(rng.uniform(0.8, 1.25), 3),
                               by=f"w{wid}")
        return {"op": "scale", "seq": rec["seq"], "args": rec["args"]}
    hits = cat.search(rng.choice(BRANDS) + rng.choice(PRODUCTS), k=5)
    return {"op": "search", "hits": len(hits)}
