"""``LiteIndex``: a PyTerrier artifact of stored document token vectors, to re-rank without text.

Layout of an index folder (written atomically: built in a hidden sibling folder, then renamed)::

    pt_meta.json              type "token_vectors", format "lite", counts, dim, encoder fingerprint
    vectors.f16               every document's token vectors, float16, row-major [token_count, dim]
    offsets.npy               int64 [doc_count + 1]: document i owns rows offsets[i]:offsets[i+1]
    docnos.npy                docnos in index order (fixed-width unicode, memory-mapped)
    docnos.sorted.npy         the docnos sorted, and
    docnos.sorted_rows.npy    their rows: a binary-search docno lookup that needs no dict in memory

``pta.Artifact.load(path)`` finds this class through the ``pyterrier.artifact`` entry point
``token_vectors.lite``.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta
import torch
from tqdm.auto import tqdm

from lite_plugins.core import LiteModel, TokenEmbeddings, atomic_directory
from lite_plugins.core.checkpoint import recover_interrupted_swap
from lite_plugins.pyterrier._frames import (
    ModelLike,
    check_result_frame,
    check_strings,
    describe_model,
    empty_results,
    encoder_fingerprint,
    load_model,
    rank_results,
)

logger = logging.getLogger(__name__)

META_NAME = "pt_meta.json"
VECTORS_NAME = "vectors.f16"
OFFSETS_NAME = "offsets.npy"
DOCNOS_NAME = "docnos.npy"
SORTED_DOCNOS_NAME = "docnos.sorted.npy"
SORTED_ROWS_NAME = "docnos.sorted_rows.npy"
INDEXING_MODES = ("create", "overwrite")
STORAGE_DTYPE = np.float16


class LiteIndex(pta.Artifact, pt.Indexer):
    """Stored LITE document token vectors (fp16), and factories for what uses them.

    * :meth:`indexer` (``model``) encodes a corpus of ``{"docno", "text"}`` records into this folder;
    * :meth:`reranker` (``model``) re-ranks result frames from the stored vectors, with no text needed:
      only the query is encoded at search time.

    The model given to :meth:`reranker` must have the encoder the index was built with (checked through
    a fingerprint of its weights); its scorer (the LITE head) may differ, e.g. retrained.

    Example::

        index = LiteIndex("./vaswani.lite")
        index.indexer(model, verbose=True).index(corpus_records)
        pipeline = bm25 >> index.reranker(model)
    """

    ARTIFACT_TYPE = "token_vectors"
    ARTIFACT_FORMAT = "lite"
    ARTIFACT_PACKAGE_HINT = "lite-plugins[pyterrier]"

    def __init__(self, path: str | Path, model: ModelLike | None = None, verbose: bool = False) -> None:
        super().__init__(path)
        self.path: Path  # always a real folder here
        self.model = model
        self.verbose = verbose
        self._payload: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"LiteIndex({str(self.path)!r})"

    # --- factories ----------------------------------------------------------------------------
    def indexer(
        self,
        model: ModelLike | None = None,
        *,
        mode: str = "create",
        batch_size: int = 32,
        text_field: str = "text",
        verbose: bool | None = None,
        chunk_size: int = 1024,
    ) -> LiteIndexer:
        """An indexer that encodes ``{"docno", text_field}`` records into this folder.

        ``mode="create"`` refuses to touch an existing index; ``mode="overwrite"`` replaces it (only once
        the new one is complete). Records are read ``chunk_size`` at a time (sorted by length within a
        chunk, so batches pad little) and encoded ``batch_size`` at a time.
        """
        return LiteIndexer(
            self,
            self._model(model),
            mode=mode,
            batch_size=batch_size,
            text_field=text_field,
            verbose=self.verbose if verbose is None else verbose,
            chunk_size=chunk_size,
        )

    def index(self, inp: Iterable[Mapping[str, Any]] | pd.DataFrame, **kwargs: Any) -> LiteIndex:
        """Build the index with the model given to the constructor (``mode="create"``)."""
        return self.indexer().index(inp)

    def reranker(
        self,
        model: ModelLike | None = None,
        *,
        batch_size: int = 64,
        verbose: bool | None = None,
        check_encoder: bool = True,
    ) -> LiteIndexReranker:
        """A transformer that re-ranks result frames (``qid``, ``query``, ``docno``) from stored vectors."""
        return LiteIndexReranker(
            self,
            self._model(model),
            batch_size=batch_size,
            verbose=self.verbose if verbose is None else verbose,
            check_encoder=check_encoder,
        )

    #: PyTerrier's usual name for a transformer that re-scores result frames (pyterrier-dr's ``scorer``).
    scorer = reranker

    def _model(self, model: ModelLike | None) -> LiteModel:
        if model is None:
            model = self.model
        if model is None:
            raise TypeError(f"{self!r} needs a LiteModel (or checkpoint folder): pass model=... here or to LiteIndex()")
        return load_model(model)

    # --- reading ------------------------------------------------------------------------------
    def built(self) -> bool:
        recover_interrupted_swap(self.path)  # a build killed between its final two renames
        return (self.path / META_NAME).is_file()

    @property
    def metadata(self) -> dict[str, Any]:
        return self._load()["meta"]

    def __len__(self) -> int:
        return int(self.metadata["doc_count"])

    def _load(self) -> dict[str, Any]:
        if self._payload is None:
            if not self.built():
                raise FileNotFoundError(f"no LITE index at {self.path} (no {META_NAME}); build it with .indexer(model)")
            try:
                meta = json.loads((self.path / META_NAME).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ValueError(f"{self.path / META_NAME} is not valid JSON ({error}); the index is corrupt") from None
            if not isinstance(meta, dict) or (meta.get("type"), meta.get("format")) != (
                self.ARTIFACT_TYPE,
                self.ARTIFACT_FORMAT,
            ):
                kind = f"{meta.get('type')}.{meta.get('format')}" if isinstance(meta, dict) else "an unknown"
                raise ValueError(
                    f"{self.path} holds a {kind} artifact, not {self.ARTIFACT_TYPE}.{self.ARTIFACT_FORMAT}"
                )
            shape = (int(meta["token_count"]), int(meta["embedding_dim"]))
            payload = {"meta": meta, "vectors": self._map_vectors(shape)}
            for key, name in (
                ("offsets", OFFSETS_NAME),
                ("docnos", DOCNOS_NAME),
                ("sorted_docnos", SORTED_DOCNOS_NAME),
                ("sorted_rows", SORTED_ROWS_NAME),
            ):
                try:  # mmap_mode never unpickles: object arrays are refused
                    payload[key] = np.load(self.path / name, mmap_mode="r")
                except (OSError, ValueError) as error:
                    raise ValueError(f"{self.path / name} is unreadable ({error}); the index is corrupt") from None
            self._payload = payload
        return self._payload

    def _map_vectors(self, shape: tuple[int, int]) -> np.ndarray:
        """Memory-map the vectors file, checking its size first (a truncated file is corrupt, not short)."""
        path = self.path / VECTORS_NAME
        expected = shape[0] * shape[1] * np.dtype(STORAGE_DTYPE).itemsize
        actual = path.stat().st_size if path.is_file() else None
        if actual != expected:
            raise ValueError(
                f"{path} holds {actual} bytes but {META_NAME} says {shape[0]} x {shape[1]} float16 vectors "
                f"({expected} bytes); the index is corrupt: rebuild it"
            )
        if not shape[0]:  # numpy cannot map an empty file
            return np.zeros(shape, dtype=STORAGE_DTYPE)
        return np.memmap(path, dtype=STORAGE_DTYPE, mode="r", shape=shape)

    def _forget(self) -> None:
        """Drop the memory maps (after a rebuild, the files they map are gone)."""
        self._payload = None

    def docnos(self) -> np.ndarray:
        """Docnos in index order (memory-mapped)."""
        return self._load()["docnos"]

    def rows(self, docnos: Sequence[str]) -> np.ndarray:
        """Row of each docno (int64); raises KeyError naming docnos that are not in the index."""
        payload = self._load()
        wanted = np.asarray(list(docnos), dtype=str)
        sorted_docnos = payload["sorted_docnos"]
        if len(wanted) == 0:
            return np.zeros(0, dtype=np.int64)
        position = np.searchsorted(sorted_docnos, wanted)
        clipped = np.minimum(position, max(len(sorted_docnos) - 1, 0))
        found = (position < len(sorted_docnos)) & (
            sorted_docnos[clipped] == wanted if len(sorted_docnos) else np.zeros(len(wanted), dtype=bool)
        )
        if not found.all():
            missing = list(dict.fromkeys(wanted[~found].tolist()))
            raise KeyError(
                f"{len(missing)} docno(s) are not in {self!r}, e.g. {missing[:5]}; "
                "was the index built from the same corpus as the first stage?"
            )
        return np.asarray(payload["sorted_rows"][clipped], dtype=np.int64)

    def vectors(self, rows: Sequence[int] | np.ndarray) -> TokenEmbeddings:
        """Stored token vectors of documents by row (see :meth:`rows`), padded: fp16 ``[n, L, dim]``, mask."""
        payload = self._load()
        offsets, vectors = payload["offsets"], payload["vectors"]
        dim = int(payload["meta"]["embedding_dim"])
        items = [torch.from_numpy(np.array(vectors[offsets[row] : offsets[row + 1]])) for row in rows]
        return TokenEmbeddings.pad(items, dim=dim) if items else TokenEmbeddings.pad([], length=0, dim=dim)

    def get_corpus_iter(self, verbose: bool = False) -> Iterator[dict[str, Any]]:
        """``{"docno", "doc_toks"}`` records (fp16 ``[n_tokens, dim]`` arrays) in index order."""
        payload = self._load()
        offsets, vectors = payload["offsets"], payload["vectors"]
        for row, docno in enumerate(tqdm(payload["docnos"], disable=not verbose, desc="Reading", unit="doc")):
            yield {"docno": str(docno), "doc_toks": np.array(vectors[offsets[row] : offsets[row + 1]])}


class LiteIndexer(pt.Indexer):
    """Encodes documents with a LITE model and writes a :class:`LiteIndex`; use :meth:`LiteIndex.indexer`."""

    def __init__(
        self,
        index: LiteIndex,
        model: LiteModel,
        mode: str = "create",
        batch_size: int = 32,
        text_field: str = "text",
        verbose: bool = False,
        chunk_size: int = 1024,
    ) -> None:
        if mode not in INDEXING_MODES:
            raise ValueError(f"mode must be one of {INDEXING_MODES}, got {mode!r}")
        if batch_size < 1 or chunk_size < 1:
            raise ValueError(f"batch_size and chunk_size must be >= 1, got {batch_size}, {chunk_size}")
        self._index = index
        self.model = model
        self.mode = mode
        self.batch_size = batch_size
        self.text_field = text_field
        self.verbose = verbose
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"{self._index!r}.indexer({describe_model(self.model, self.model)}, mode={self.mode!r})"

    def index_inputs(self) -> list[list[str]]:
        return [["docno", self.text_field]]

    def index(self, inp: Iterable[Mapping[str, Any]] | pd.DataFrame, **kwargs: Any) -> LiteIndex:
        """Encode every record and write the index; returns the :class:`LiteIndex`.

        Nothing is visible at the index path until the build completes: an interrupted build leaves
        an existing index untouched and readable, and no half-written index behind.
        """
        target = self._index.path
        self._check_target(target)
        records: Iterable[Mapping[str, Any]] = inp.to_dict("records") if isinstance(inp, pd.DataFrame) else inp
        total = len(records) if hasattr(records, "__len__") else None  # type: ignore[arg-type]
        model = self.model.eval()
        dim = int(model.encoder.embedding_dim)
        docnos: list[str] = []
        offsets = [0]
        with atomic_directory(target, overwrite=True) as temporary:
            with (
                open(temporary / VECTORS_NAME, "wb") as vectors_out,
                tqdm(total=total, disable=not self.verbose, desc=f"Indexing {target.name}", unit="doc") as progress,
            ):
                for chunk in _chunks(records, self.chunk_size):
                    ids, texts = self._unpack(chunk, first_number=len(docnos))
                    encoded = model.encode_documents(texts, batch_size=self.batch_size, storage_dtype=torch.float16)
                    for vectors in encoded.unpadded():
                        array = vectors.detach().cpu().numpy().astype(STORAGE_DTYPE, copy=False)
                        vectors_out.write(array.tobytes())
                        offsets.append(offsets[-1] + array.shape[0])
                    docnos.extend(ids)
                    progress.update(len(ids))
            self._write_lookup(temporary, docnos, offsets)
            meta = {
                "type": LiteIndex.ARTIFACT_TYPE,
                "format": LiteIndex.ARTIFACT_FORMAT,
                "package_hint": LiteIndex.ARTIFACT_PACKAGE_HINT,
                "doc_count": len(docnos),
                "token_count": offsets[-1],
                "embedding_dim": dim,
                "dtype": "float16",
                "max_document_tokens": model.document_tokens,
                "encoder_fingerprint": encoder_fingerprint(model),
                "encoder": {k: v for k, v in model.encoder.get_config().items() if k != "model_config"},
                "token_budget": model.token_budget.get_config() if model.token_budget else None,
            }
            (temporary / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        self._index._forget()
        logger.info("indexed %d documents (%d token vectors) into %s", len(docnos), offsets[-1], target)
        return self._index

    def _check_target(self, target: Path) -> None:
        if target.is_file():
            raise FileExistsError(f"{target} is a file; a LiteIndex is a folder")
        if not target.is_dir() or not any(target.iterdir()):
            return
        if self.mode == "create":
            raise FileExistsError(
                f"an index already exists at {target}; use index.indexer(model, mode='overwrite') to replace it"
            )
        meta_path = target / META_NAME
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        if (meta.get("type"), meta.get("format")) != (LiteIndex.ARTIFACT_TYPE, LiteIndex.ARTIFACT_FORMAT):
            raise FileExistsError(f"{target} is a non-empty folder that is not a LiteIndex; refusing to overwrite it")

    def _unpack(self, chunk: list[Mapping[str, Any]], first_number: int) -> tuple[list[str], list[str]]:
        ids, texts = [], []
        for number, record in enumerate(chunk, start=first_number):
            if not isinstance(record, Mapping):
                raise TypeError(
                    f"document {number} must be a dict with 'docno' and {self.text_field!r}, "
                    f"got {type(record).__name__}"
                )
            missing = [key for key in ("docno", self.text_field) if key not in record]
            if missing:
                raise KeyError(f"document {number} lacks {missing}; each record needs 'docno' and {self.text_field!r}")
            docno, text = record["docno"], record[self.text_field]
            if not isinstance(docno, str) or not isinstance(text, str):
                raise TypeError(
                    f"document {number}: docno and {self.text_field!r} must be strings, got "
                    f"{type(docno).__name__} {docno!r:.40} and {type(text).__name__}"
                )
            ids.append(docno)
            texts.append(text)
        return ids, texts

    @staticmethod
    def _write_lookup(directory: Path, docnos: list[str], offsets: list[int]) -> None:
        docno_array = np.asarray(docnos, dtype=str) if docnos else np.zeros(0, dtype="<U1")
        order = np.argsort(docno_array, kind="stable")
        sorted_docnos = docno_array[order]
        duplicated = sorted_docnos[1:][sorted_docnos[1:] == sorted_docnos[:-1]]
        if len(duplicated):
            raise ValueError(f"docnos must be unique; repeated: {list(dict.fromkeys(duplicated.tolist()))[:5]}")
        np.save(directory / OFFSETS_NAME, np.asarray(offsets, dtype=np.int64))
        np.save(directory / DOCNOS_NAME, docno_array)
        np.save(directory / SORTED_DOCNOS_NAME, sorted_docnos)
        np.save(directory / SORTED_ROWS_NAME, order.astype(np.int64))


class LiteIndexReranker(pt.Transformer):
    """Re-ranks result frames from a :class:`LiteIndex`'s stored vectors; use :meth:`LiteIndex.reranker`.

    Scores equal :class:`~lite_plugins.pyterrier.LiteReranker`'s up to the fp16 rounding of stored vectors.
    """

    def __init__(
        self,
        index: LiteIndex,
        model: LiteModel,
        batch_size: int = 64,
        verbose: bool = False,
        check_encoder: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._index = index
        self.model = model.eval()
        self.batch_size = batch_size
        self.verbose = verbose
        if check_encoder:
            stored, current = index.metadata.get("encoder_fingerprint"), encoder_fingerprint(model)
            if stored != current:
                raise ValueError(
                    f"{index!r} was built with another encoder (fingerprint {stored}, "
                    f"this model's is {current}): "
                    "its vectors would not match this model's queries. Rebuild the index with this model "
                    "(indexer(model, mode='overwrite')), or pass check_encoder=False if you know better."
                )

    def __repr__(self) -> str:
        extra = f", batch_size={self.batch_size}" if self.batch_size != 64 else ""
        return f"{self._index!r}.reranker({describe_model(self.model, self.model)}{extra})"

    @torch.no_grad()
    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        check_result_frame(inp, ["query"])
        if len(inp) == 0:
            return empty_results(inp)
        queries = check_strings(inp, "query")
        rows = self._index.rows(check_strings(inp, "docno"))
        unique = list(dict.fromkeys(queries))
        query_number = {query: i for i, query in enumerate(unique)}
        query_vectors = self.model.encode_queries(unique, batch_size=self.batch_size)
        query_rows = torch.tensor([query_number[q] for q in queries])
        scores = []
        starts = range(0, len(inp), self.batch_size)
        for start in tqdm(starts, disable=not self.verbose, desc="Re-ranking", unit="batch"):
            end = start + self.batch_size
            documents = self._index.vectors(rows[start:end])
            batch_queries = query_vectors[query_rows[start:end].to(query_vectors.embeddings.device)]
            scores.append(self.model.score_embeddings(batch_queries, documents, pairing="aligned").float().cpu())
        return rank_results(inp, torch.cat(scores).tolist())


def _chunks(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
