"""EBRM over a catalogue: DeepBoW retrieves from the index, EBRM (or the hybrid) orders the
candidates; and EBRM's entity-by-entity view of an indexed product. This module composes a
Catalogue with the entity model; neither knows the other.

The journal's pins and type rules apply (or the edits given, to preview an edit), with each
product's `category` field for the rules.
"""

from __future__ import annotations

from deepbow.errors import InputError
from index.catalogue import Catalogue
from index.editor import CompiledEdits
from index.segments import Hit, item_categories

SCORERS = ("deepbow", "ebrm", "hybrid")


class Reranker:
    """A catalogue with an EBRM model, and the hybrid of the catalogue's DeepBoW model with it
    when one is given (ebrm.hybrid.Hybrid)."""

    def __init__(self, catalogue: Catalogue, ebrm, hybrid=None) -> None:
        self.cat = catalogue
        self.ebrm = ebrm
        self.hybrid = hybrid

    def rerank(self, query: str, k: int = 10, scorer: str = "ebrm", depth: int = 50,
               filters: dict | None = None, edits: CompiledEdits | None = None
               ) -> list[tuple[Hit, float]]:
        """DeepBoW retrieves `depth` candidates, then EBRM (or the hybrid) orders them:
        (hit, score) pairs, best first, ties by the retrieval order."""
        if scorer not in SCORERS:
            raise InputError(f"unknown scorer {scorer!r}: use {', '.join(SCORERS)}")
        if scorer == "hybrid" and self.hybrid is None:
            raise InputError("hybrid reranking needs the hybrid (an EBRM model calibrated "
                             "against this index's DeepBoW model)")
        edits = edits if edits is not None else self.cat.journal_edits()
        hits = self.cat.search(query, max(k, depth), filters, edits=edits)
        if scorer == "deepbow" or not hits:
            return [(h, h.score) for h in hits[:k]]
        scores = self.ebrm.score(query, [h.title for h in hits],
                                 [item_categories(h.fields) for h in hits], edits=edits.state)
        if scorer == "hybrid":
            scores = self.hybrid.combine([h.score for h in hits], scores)
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))[:k]
        return [(hits[i], float(scores[i])) for i in order]

    def entity_explain(self, query: str, item_id: str, edits: CompiledEdits | None = None):
        """EBRM's entity-by-entity view of one product (ebrm.explain.EBRMExplanation)."""
        item = self.cat.item_by_id(item_id)
        edits = edits if edits is not None else self.cat.journal_edits()
        return self.ebrm.explain(query, item["title"], item_categories(item), edits=edits.state)
