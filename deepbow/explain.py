"""DeepBoW's explanation of a score: the matched words and their contributions, as text or JSON.

The rows sum to the score exactly (integer codes), whoever built them: pair scoring
(DeepBoW.explain) or the index (Catalogue.explain, which reads the title weights from the
postings, edits included).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from deepbow.sparse import SparseVector

LABEL_NAMES = {0: "irrelevant", 1: "partly relevant", 2: "exact match"}


@dataclass
class MatchRow:
    word: str
    query_weight: float
    title_weight: float
    contribution: float
    query_expanded: bool
    title_expanded: bool


@dataclass
class Explanation:
    query: str
    title: str
    score: float
    label: int
    rows: list[MatchRow]  # by decreasing contribution
    query_vector: SparseVector
    title_vector: SparseVector

    @property
    def expansion_rows(self) -> list[MatchRow]:
        return [r for r in self.rows if r.query_expanded or r.title_expanded]

    def to_json(self) -> dict:
        return {"query": self.query, "title": self.title, "score": self.score,
                "label": self.label, "matches": [asdict(r) for r in self.rows]}

    def to_text(self) -> str:
        lines = [f"query: {self.query}", f"title: {self.title}",
                 f"score: {self.score:.4f}  label: {self.label} ({LABEL_NAMES[self.label]})"]
        if not self.rows:
            return "\n".join([*lines, "no matched words"])
        lines.append(f"  {'word':<16} {'query w':>8} {'title w':>8} {'contrib':>8}  share")
        for r in self.rows:
            mark = ("q+" if r.query_expanded else "") + ("t+" if r.title_expanded else "")
            share = r.contribution / self.score if self.score > 0 else 0.0
            lines.append(f"  {r.word:<16} {r.query_weight:8.4f} {r.title_weight:8.4f} "
                         f"{r.contribution:8.4f}  {share:5.1%} {mark}")
        lines.append(f"  {'sum':<16} {'':>8} {'':>8} "
                     f"{sum(r.contribution for r in self.rows):8.4f}")
        if self.expansion_rows:
            lines.append("expansion matches (q+: added to the query, t+: added to the title): "
                         + ", ".join(r.word for r in self.expansion_rows))
        return "\n".join(lines)
