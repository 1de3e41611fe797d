"""``DocumentTexts``: an in-memory docno -> text store for ``pt.text.get_text`` (PISA stores no text)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta


class DocumentTexts:
    """Texts of a corpus by docno, to attach them to a first stage's results.

    >>> import pandas as pd, pyterrier as pt
    >>> texts = DocumentTexts([{"docno": "d1", "text": "late interaction"}])
    >>> loader = pt.text.get_text(texts, "text")
    >>> loader(pd.DataFrame({"qid": ["1"], "query": ["q"], "docno": ["d1"]}))["text"].tolist()
    ['late interaction']
    """

    def __init__(self, documents: Mapping[str, str] | Iterable[Mapping[str, Any]], text_field: str = "text") -> None:
        if isinstance(documents, Mapping):
            self.texts: dict[str, str] = {str(docno): str(text) for docno, text in documents.items()}
        else:
            self.texts = {str(record["docno"]): str(record[text_field]) for record in documents}
        self.text_field = text_field

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return f"DocumentTexts(<{len(self.texts)} documents>, text_field={self.text_field!r})"

    def text_loader(self, fields: list[str] | str = "*", *, verbose: bool = False) -> pt.Transformer:
        """The transformer ``pt.text.get_text`` asks for: adds ``text_field`` to each row by ``docno``."""
        requested = [fields] if isinstance(fields, str) else list(fields)
        if requested != ["*"] and requested != [self.text_field]:
            raise ValueError(f"these DocumentTexts only hold {self.text_field!r}; asked for {requested}")
        return _TextLoader(self)


class _TextLoader(pt.Transformer):
    def __init__(self, store: DocumentTexts) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"{self.store!r}.text_loader()"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        pta.validate.columns(inp, includes=["docno"])
        texts = self.store.texts
        missing = [docno for docno in dict.fromkeys(inp["docno"].tolist()) if docno not in texts]
        if missing:
            raise KeyError(f"{len(missing)} docno(s) have no text in {self.store!r}, e.g. {missing[:5]}")
        return inp.assign(**{self.store.text_field: [texts[docno] for docno in inp["docno"].tolist()]})
