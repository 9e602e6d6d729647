"""File and text helpers shared by the reference scripts.

- safetensors read/write (own ~40-line implementation: the `safetensors` package is not
  installed on the CI machine, and our reader is also a check of the C++ one);
- llama2.c legacy checkpoint reader (stories260K.bin) and tokenizer (tok512.bin) with
  llama2.c run.c's BPE encode;
- text loading, SentencePiece tokenization, token hashes, JSON output, packed-bit masks.

Nothing here depends on the torch version beyond torch.from_numpy.
"""
import hashlib
import json
import os
import struct
import time

import numpy as np
import torch

# safetensors dtype names <-> numpy dtypes (little-endian on disk).
_ST_TO_NP = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "BOOL": "?",
}
_NP_TO_ST = {np.dtype(v).str.lstrip("<|"): k for k, v in _ST_TO_NP.items()}


def read_safetensors(path):
    """Returns ({name: torch.Tensor (CPU, file dtype; BF16 -> float32)}, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", data[:8])
    if 8 + hlen > len(data):
        raise ValueError(f"{path}: header length {hlen} exceeds file size")
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        shape = [int(s) for s in info["shape"]]
        if not (0 <= start <= end and base + end <= len(data)):
            raise ValueError(f"{path}: bad offsets for {name}")
        raw = data[base + start:base + end]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_ST_TO_NP[info["dtype"]]))
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"{path}: {name} has {arr.size} elements, shape says {shape}")
        out[name] = torch.from_numpy(arr.reshape(shape).astype(arr.dtype.newbyteorder("=")))
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor or ndarray} in sorted name order, header padded to 8 bytes."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        arr = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        arr = np.ascontiguousarray(arr)
        key = arr.dtype.newbyteorder("<").str.lstrip("<|") if arr.dtype.itemsize > 1 else arr.dtype.str.lstrip("<|")
        if key not in _NP_TO_ST:
            raise ValueError(f"unsupported dtype {arr.dtype} for {name}")
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NP_TO_ST[key], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_hf_weights(model_dir):
    """All tensors of a Hugging Face model directory (sharded or not)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    out = {}
    for s in shards:
        t, _ = read_safetensors(os.path.join(model_dir, s))
        out.update(t)
    return out


# ----------------------------------------------------------------------------------------------
# llama2.c legacy checkpoint (data/README.md "Format") and tokenizer


def read_llama2c(path):
    """Returns (header dict, {name: float32 tensor}) in the file's own (interleaved-RoPE) layout."""
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", data[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv * hs
    fl = np.frombuffer(data, dtype="<f4", offset=28)
    shapes = [
        ("token_embedding", (vocab, dim)), ("rms_att", (n_layers, dim)),
        ("wq", (n_layers, dim, dim)), ("wk", (n_layers, kv_dim, dim)), ("wv", (n_layers, kv_dim, dim)),
        ("wo", (n_layers, dim, dim)), ("rms_ffn", (n_layers, dim)),
        ("w1", (n_layers, hidden, dim)), ("w2", (n_layers, dim, hidden)), ("w3", (n_layers, hidden, dim)),
        ("rms_final", (dim,)), ("freq_cis_real", (seq_len, hs // 2)), ("freq_cis_imag", (seq_len, hs // 2)),
    ]
    out, pos = {}, 0
    for name, shp in shapes:
        n = int(np.prod(shp))
        out[name] = torch.from_numpy(fl[pos:pos + n].astype(np.float32).reshape(shp))
        pos += n
    if not shared:
        out["wcls"] = torch.from_numpy(fl[pos:pos + vocab * dim].astype(np.float32).reshape(vocab, dim))
        pos += vocab * dim
    if pos != fl.size:
        raise ValueError(f"{path}: {fl.size - pos} floats left over")
    hdr = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
               vocab_size=vocab, seq_len=seq_len, shared_classifier=shared)
    return hdr, out


def read_llama2c_tokenizer(path, vocab_size):
    """tok512.bin: int32 max_token_length, then per token: f32 score, i32 len, bytes."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 4
    vocab, scores = [], []
    for _ in range(vocab_size):
        score, n = struct.unpack("<fi", data[pos:pos + 8])
        pos += 8
        vocab.append(data[pos:pos + n])
        scores.append(score)
        pos += n
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} bytes left over")
    return vocab, scores


def llama2c_encode(text, vocab, scores, bos=True):
    """BPE encode exactly as llama2.c run.c `encode` (dummy prefix, byte fallback +3, greedy
    merge of the highest-scoring adjacent pair, first one on ties)."""
    lookup = {v: i for i, v in enumerate(vocab)}
    toks = [1] if bos else []
    raw = text.encode("utf-8")
    if raw:
        toks.append(lookup[b" "])
    i = 0
    while i < len(raw):  # one UTF-8 code point at a time
        j = i + 1
        while j < len(raw) and (raw[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        cp = raw[i:j]
        if cp in lookup:
            toks.append(lookup[cp])
        else:
            toks.extend(b + 3 for b in cp)
        i = j
    while True:  # the BOS takes part in the pair search too, as in run.c (it never merges)
        best, best_id, best_idx = -1e10, -1, -1
        for k in range(len(toks) - 1):
            cand = lookup.get(vocab[toks[k]] + vocab[toks[k + 1]], -1)
            if cand != -1 and scores[cand] > best:
                best, best_id, best_idx = scores[cand], cand, k
        if best_idx == -1:
            break
        toks[best_idx:best_idx + 2] = [best_id]
    return toks


# ----------------------------------------------------------------------------------------------
# Text and tokens


def read_text(path):
    """The file's bytes decoded as UTF-8, with no newline translation."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def sp_processor(model_path):
    try:
        import sentencepiece as spm
    except ImportError as e:
        raise SystemExit(f"FATAL: python sentencepiece is required ({e})")
    return spm.SentencePieceProcessor(model_file=model_path)


def encode_with_bos(sp, text, bos_id=1):
    """The evaluation/calibration stream: one BOS, then sp.encode(whole text)."""
    return [bos_id] + list(sp.encode(text))


def ids_sha256(ids):
    """sha256 of the ids as little-endian int32, hex (the C++ tests can compute the same)."""
    return hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest()


def pack_mask(mask):
    """np.packbits over the flattened row-major [out, in] bool mask (True = zero), big-endian
    bit order within each byte (numpy default): bit 7 of byte 0 is element [0, 0]."""
    return np.packbits(mask.detach().cpu().numpy().astype(bool).reshape(-1))


def unpack_mask(packed, shape):
    n = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(np.asarray(packed), count=n).astype(bool).reshape(shape))


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    import re
    text = json.dumps(obj, indent=1)
    # Lists of plain numbers on one line (window NLLs, index lists) keep the files small.
    text = re.sub(r"\[\s*([-+0-9.eE]+(?:,\s*[-+0-9.eE]+)*)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    with open(path, "w") as f:
        f.write(text + "\n")


class Timer:
    """`with Timer("name", log): ...` prints the elapsed seconds."""

    def __init__(self, name, log=print):
        self.name, self.log = name, log

    def __enter__(self):
        self.t0 = time.time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.time() - self.t0
        self.log(f"  [{self.seconds:7.2f} s] {self.name}")


def base_parser(description):
    """The options every part accepts (run_all passes the same ones through)."""
    import argparse
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", required=True, help="output directory (e.g. tests/golden)")
    p.add_argument("--data", default=os.environ.get("PRUNERD_TEST_DATA", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data")),
        help="the shared data directory ($PRUNERD_TEST_DATA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--models", default="stories260K,prose16M", help="comma-separated subset")
    p.add_argument("--max-eval-windows", type=int, default=None,
                   help="DEVELOPMENT ONLY: cut every perplexity evaluation to this many windows")
    p.add_argument("--calib-override", default=None,
                   help="DEVELOPMENT ONLY: NxT calibration size for every model, e.g. 4x128")
    return p
