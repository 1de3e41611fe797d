"""Bytes per stored document for each storage lever, and for real indexes of the same documents.

Computed rows (exact, from each document's real token count with the MiniLM tokenizer, 180-token cut):
full fp32 / fp16 vectors, a token budget k, a projection d', and combinations. Measured rows: the
on-disk size of a LiteIndex (PyTerrier artifact), a PyLate Voyager index and a PyLate PLAID index built
over the same documents (``--index-docs`` of them; encoding is the slow part on a CPU).

    python benchmarks/storage.py [--docs 2000] [--index-docs 300]

Writes ``benchmarks/results/storage.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import RESULTS, load_set

from lite_plugins.core import LiteModel, bytes_per_document
from lite_plugins.training import default_encoder

logger = logging.getLogger("storage")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents for the computed rows")
    parser.add_argument("--index-docs", type=int, default=300, help="documents actually indexed (0 = skip)")
    parser.add_argument("--output", type=Path, default=RESULTS / "storage.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data = load_set("dl21-bm25")
    texts = data.texts()[: args.docs]
    encoder_path = default_encoder()
    model = LiteModel.from_encoder(encoder_path, scorer="maxsim")
    ids = model.encoder.tokenize(texts, "document")["attention_mask"].sum(-1).float()
    mean_tokens = float(ids.mean())
    dim = model.encoder.embedding_dim

    def mean_bytes(k: int | None, d: int, dtype: torch.dtype) -> float:
        kept = ids.clamp(max=k) if k else ids
        return float(torch.tensor([bytes_per_document(n, d, dtype) for n in kept.tolist()]).mean())

    full = mean_bytes(None, dim, torch.float32)
    settings = [
        ("full: all tokens, d=384, fp32", None, dim, torch.float32),
        ("fp16", None, dim, torch.float16),
        ("k=50 tokens, fp16", 50, dim, torch.float16),
        ("k=24 tokens, fp16", 24, dim, torch.float16),
        ("k=16 tokens, fp16", 16, dim, torch.float16),
        ("d'=128, fp16", None, 128, torch.float16),
        ("k=50, d'=128, fp16", 50, 128, torch.float16),
    ]
    rows = []
    for name, k, d, dtype in settings:
        value = mean_bytes(k, d, dtype)
        rows.append(
            {"setting": name, "bytes_per_document": value, "fraction_of_full": value / full, "kind": "computed"}
        )

    if args.index_docs:
        sample = texts[: args.index_docs]
        with tempfile.TemporaryDirectory() as tmp:
            import pandas as pd
            import pylate.indexes
            import pylate.models

            from lite_plugins.pyterrier import LiteIndex

            lite_index = LiteIndex(Path(tmp) / "lite.index")
            lite_index.indexer(model, batch_size=32).index(
                pd.DataFrame({"docno": [str(i) for i in range(len(sample))], "text": sample}).to_dict("records")
            )
            value = folder_bytes(Path(tmp) / "lite.index") / len(sample)
            rows.append(
                {
                    "setting": "LiteIndex on disk (fp16, all tokens, d=384)",
                    "bytes_per_document": value,
                    "fraction_of_full": value / full,
                    "kind": "measured",
                }
            )
            for embedding_size in (128,):
                colbert = pylate.models.ColBERT(
                    model_name_or_path=encoder_path, document_length=180, embedding_size=embedding_size
                )
                embeddings = colbert.encode(sample, is_query=False, batch_size=32)
                doc_ids = [str(i) for i in range(len(sample))]
                for kind in ("Voyager", "PLAID"):
                    folder = Path(tmp) / f"pylate-{kind}"
                    index_class = getattr(pylate.indexes, kind)
                    kwargs = {"nbits": 2} if kind == "PLAID" else {}
                    index = index_class(index_folder=str(folder), index_name="index", override=True, **kwargs)
                    index.add_documents(documents_ids=doc_ids, documents_embeddings=embeddings)
                    value = folder_bytes(folder) / len(sample)
                    rows.append(
                        {
                            "setting": f"PyLate {kind} index on disk (d={embedding_size})",
                            "bytes_per_document": value,
                            "fraction_of_full": value / full,
                            "kind": "measured",
                        }
                    )
    print(f"{len(texts)} DL21 BM25 candidate passages, mean {mean_tokens:.1f} tokens (180-token cut, with markers)")
    print(f"{'setting':<48}{'bytes/doc':>12}{'x full':>9}")
    for row in rows:
        print(f"{row['setting']:<48}{row['bytes_per_document']:>12.0f}{row['fraction_of_full']:>9.3f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {"documents": len(texts), "mean_tokens": mean_tokens, "index_documents": args.index_docs, "rows": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
