"""One product's metadata as the agents see it: cleaned text, extra columns, and the words a query
about it may use."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation.refinement.text import clean_text, grounding_index

CORE_COLUMNS = ("product_id", "product_type", "title", "description", "image_path", "split", "phash")


@dataclass(frozen=True)
class Product:
    """One product's metadata as the agents see it (text cleaned, NaN -> "")."""

    product_id: str
    product_type: str
    title: str
    description: str
    extras: tuple[tuple[str, str], ...]
    index: frozenset[str] = field(repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Product:
        pid = clean_text(row.get("product_id"))
        ptype = clean_text(row.get("product_type")).lower()
        if not pid or not ptype:
            raise ValueError(f"product {pid or row!r}: product_id and product_type are required")
        extras = tuple((k, clean_text(v)) for k, v in row.items()
                       if k not in CORE_COLUMNS and not k.endswith("_path") and clean_text(v))
        title, desc = clean_text(row.get("title")), clean_text(row.get("description"), keep_lines=True)
        index = grounding_index([ptype, title, desc, *(v for _, v in extras)])
        return cls(pid, ptype, title, desc, extras, index)

    def sources(self) -> list[tuple[str, str]]:
        """Fields in trust order: colour/pattern columns, title, other columns, then the noisy description."""
        named = [(k, v) for k, v in self.extras if any(s in k.lower() for s in ("colour", "color", "pattern"))]
        rest = [(k, v) for k, v in self.extras if (k, v) not in named]
        return [*named, ("title", self.title), *rest, ("description", self.description)]

    def prompt_text(self) -> str:
        lines = [f"product_type: {self.product_type}", f"title: {self.title}",
                 *(f"{k}: {v}" for k, v in self.extras), f"description: {self.description}"]
        return "\n".join(lines)
