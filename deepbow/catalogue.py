"""Reading a product catalogue: JSONL {"id": str, "title": str, ...} or TSV `id<TAB>title`."""

from __future__ import annotations

import json
from pathlib import Path

from deepbow.errors import InputError


def read_catalogue(path: str | Path) -> list[dict]:
    """All items, in file order; a bad line raises InputError naming it."""
    path = Path(path)
    items: list[dict] = []
    seen: set[str] = set()
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{lineno}: not UTF-8 ({e.reason})") from None
            if line.lstrip().startswith("{"):
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            else:
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) < 2:
                    raise InputError(f"{path}:{lineno}: expected JSON or 'id<TAB>title'")
                item = {"id": parts[0], "title": parts[1]}
            if not isinstance(item, dict) or not isinstance(item.get("title"), str) \
                    or "id" not in item:
                raise InputError(f'{path}:{lineno}: needs "id" and a string "title"')
            item["id"] = str(item["id"])
            if item["id"] in seen:
                raise InputError(f"{path}:{lineno}: duplicate id {item['id']!r}")
            seen.add(item["id"])
            items.append(item)
    return items
