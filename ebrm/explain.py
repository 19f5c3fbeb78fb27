"""EBRM's explanation of a score, entity by entity, as text or JSON (`deepbow explain
--scorer ebrm`): each entity's satisfies (s) and no-conflict (c) judgements, its role in the
logic, pins and rules, the brand presence and the back-off, and how they make the score."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLE_PRODUCT = "must match (OR) · must not conflict (AND)"
ROLE_OTHER = "must not conflict (AND)"


@dataclass
class EntityRow:
    type: str
    text: str
    start: int
    end: int
    s: float
    c: float
    role: str
    pinned: bool = False
    weight: float = 1.0  # its weight in the OR (candidates: confidence ** gamma)
    candidate: bool = False

    def to_json(self) -> dict:
        return {"type": self.type, "text": self.text, "start": self.start, "end": self.end,
                "satisfies": self.s, "no_conflict": self.c, "role": self.role,
                "pinned": self.pinned, "weight": self.weight, "candidate": self.candidate}


@dataclass
class EBRMExplanation:
    query: str
    title: str
    rows: list[EntityRow]
    sat: float
    ok: float
    score: float
    label: int
    family: str
    notes: list[str] = field(default_factory=list)
    query_brands: list[str] = field(default_factory=list)
    present: float | None = None  # the query's brand found among the title's brands
    presence_rule: str = ""
    query_products: list[str] = field(default_factory=list)
    backoff: float | None = None  # ε · lexical(q, item), when the back-off is on
    brands_besides_product: bool = False  # query_brands are the words besides its product

    def to_json(self) -> dict:
        return {"query": self.query, "title": self.title, "score": self.score,
                "label": self.label, "satisfies": self.sat, "no_conflict": self.ok,
                "family": self.family, "entities": [r.to_json() for r in self.rows],
                "query_brands": self.query_brands, "brand_present": self.present,
                "query_products": self.query_products, "backoff": self.backoff,
                "notes": self.notes}

    def to_text(self) -> str:
        lines = [f"query  {self.query}", f"title  {self.title}",
                 f"EBRM score {self.score:.4f} = sat {self.sat:.4f} × (1 + ok {self.ok:.4f})"
                 f"   label {self.label}   ({self.family} t-norm)", "",
                 f"{'type':<8} {'entity':<20} {'satisfies':>9} {'no-conflict':>11}  role"]
        for r in self.rows:
            s = f"{r.s:9.4f}" if r.type == "product" else f"{'-':>9}"
            c = f"{r.c:11.4f}" if not (r.candidate and r.type == "product") else f"{'-':>11}"
            pin = "  [pinned]" if r.pinned else ""
            lines.append(f"{r.type:<8} {r.text:<20} {s} {c}  {r.role}{pin}")
        if not self.rows:
            lines.append("(no entities found in the title)")
        lines.append("")
        backoff = ", back-off" if self.backoff is not None else ""
        lines.append(f"sat = OR(product satisfies × weight{backoff}) = {self.sat:.4f};  "
                     f"ok = AND(no-conflict{', brand present' if self.present is not None else ''})"
                     f" = {self.ok:.4f}")
        if self.backoff is not None:
            lines.append(f"back-off: the query's product word ({', '.join(self.query_products)})"
                         f" {'occurs' if self.backoff > 0 else 'does not occur'} in the title: "
                         f"{self.backoff:.4f}")
        if self.present is not None:
            what = ("names, besides its product word, " if self.brands_besides_product
                    else "asks for brand ")
            lines.append(f"the query {what}{', '.join(self.query_brands)}: present = "
                         f"{self.present:.4f} ({self.presence_rule})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
