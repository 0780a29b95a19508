"""MD5 (RFC 1321) in ``jax.numpy`` on uint32 words, over fixed-size padded blocks.

The original module hash (reference spec §3.1) is an iterated MD5 over ASCII hex strings whose
lengths are known in advance from the vertex count and the degrees. This module provides the
compression function and helpers to move between digests, hex text and MD5 message words, all
as pure ``jnp`` functions with static shapes (they run inside ``jit``/``vmap``).

Conventions:

* A *message* of ``k`` blocks is ``uint32[..., 16 * k]``: the bytes of the padded message
  (content, ``0x80``, zeros, 64-bit little-endian bit length) packed little-endian into words,
  exactly as MD5 reads them.
* A *digest* is ``uint32[..., 4]``: the MD5 state words ``(A, B, C, D)``; its 16 bytes are the
  little-endian bytes of ``A``, then ``B``, ``C``, ``D`` (so ``digest_to_bytes`` is a view).
* *Hex words* are ``uint32[..., 8]``: the 32 lowercase hex characters of a digest packed
  little-endian, i.e. the message words of the hex string.
* A *sort key* is ``uint32[..., 4]``: the digest bytes read big-endian, so that comparing keys
  lexicographically word by word is comparing the hex strings (hex digits of a fixed length sort
  like the bytes they encode).

Example::

    >>> import numpy as np
    >>> from nasbench_jax.graph import md5
    >>> words = md5.pack_message(b"abc")          # host helper: one padded block
    >>> md5.digest_to_hex(md5.digest_to_bytes(md5.md5_blocks(words[None]))).tolist()
    [b'900150983cd24fb0d6963f7d28e17f72']
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = [
    "INIT_STATE",
    "md5_blocks",
    "md5_blocks_masked",
    "compress",
    "hex_words",
    "hex_words_cols",
    "sort_keys",
    "digest_to_hex",
    "hex_to_digest",
    "digest_to_bytes",
    "bytes_to_digest",
    "pack_message",
    "num_blocks",
]

#: Initial MD5 state (A, B, C, D).
INIT_STATE = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)

_K = tuple(int(abs(math.sin(i + 1)) * 2**32) & 0xFFFFFFFF for i in range(64))
_S = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4
_G = tuple(
    i if i < 16 else (5 * i + 1) % 16 if i < 32 else (3 * i + 5) % 16 if i < 48 else (7 * i) % 16
    for i in range(64)
)


def num_blocks(length_bytes: int) -> int:
    """Number of 64-byte MD5 blocks of a message of ``length_bytes`` bytes (with padding)."""
    return (length_bytes + 8) // 64 + 1


def _rotl(x, s: int):
    return (x << jnp.uint32(s)) | (x >> jnp.uint32(32 - s))


def compress(state, block):
    """One MD5 compression.

    Args:
      state: tuple of four ``uint32[...]`` arrays ``(A, B, C, D)``.
      block: sequence of 16 ``uint32[...]`` arrays (the block's message words).

    Returns:
      The new state, a tuple of four ``uint32[...]`` arrays.
    """
    a, b, c, d = state
    a0, b0, c0, d0 = a, b, c, d
    for i in range(64):
        if i < 16:
            f = (b & c) | (~b & d)
        elif i < 32:
            f = (d & b) | (~d & c)
        elif i < 48:
            f = b ^ c ^ d
        else:
            f = c ^ (b | ~d)
        f = f + a + jnp.uint32(_K[i]) + block[_G[i]]
        a, d, c = d, c, b
        b = b + _rotl(f, _S[i])
    return (a0 + a, b0 + b, c0 + c, d0 + d)


def _init(shape):
    return tuple(jnp.full(shape, v, jnp.uint32) for v in INIT_STATE)


def md5_blocks(words):
    """MD5 digests of messages that all have exactly ``k`` blocks.

    Args:
      words: ``uint32[..., 16 * k]`` padded message words (see module docstring).

    Returns:
      ``uint32[..., 4]`` digests.
    """
    words = jnp.asarray(words, jnp.uint32)
    k = words.shape[-1] // 16
    state = _init(words.shape[:-1])
    for blk in range(k):
        state = compress(state, [words[..., 16 * blk + j] for j in range(16)])
    return jnp.stack(state, axis=-1)


def md5_blocks_masked(words, nblocks):
    """MD5 digests of messages with up to ``k`` blocks each; message ``i`` uses ``nblocks[i]``.

    Blocks past a message's own count are still computed (static shapes) but not applied.

    Args:
      words: ``uint32[..., 16 * k]`` padded message words.
      nblocks: ``int32[...]`` number of blocks of each message, ``1..k``.

    Returns:
      ``uint32[..., 4]`` digests.
    """
    words = jnp.asarray(words, jnp.uint32)
    k = words.shape[-1] // 16
    state = _init(words.shape[:-1])
    for blk in range(k):
        new = compress(state, [words[..., 16 * blk + j] for j in range(16)])
        if blk == 0:
            state = new
        else:
            use = nblocks > blk
            state = tuple(jnp.where(use, n, s) for n, s in zip(new, state))
    return jnp.stack(state, axis=-1)


_HEX_LO = 48  # '0'
_HEX_ALPHA = 87  # ord('a') - 10


def _hex_char(nibble):
    return nibble + jnp.where(nibble < 10, jnp.uint32(_HEX_LO), jnp.uint32(_HEX_ALPHA))


def hex_words_cols(digest):
    """:func:`hex_words` in column layout: ``uint32[4, M]`` -> ``uint32[8, M]``."""
    out = []
    for m in range(8):
        w = digest[m // 2]
        shift = 16 * (m % 2)
        b0 = (w >> jnp.uint32(shift)) & jnp.uint32(0xFF)
        b1 = (w >> jnp.uint32(shift + 8)) & jnp.uint32(0xFF)
        c0 = _hex_char(b0 >> jnp.uint32(4))
        c1 = _hex_char(b0 & jnp.uint32(0xF))
        c2 = _hex_char(b1 >> jnp.uint32(4))
        c3 = _hex_char(b1 & jnp.uint32(0xF))
        out.append(c0 | (c1 << jnp.uint32(8)) | (c2 << jnp.uint32(16)) | (c3 << jnp.uint32(24)))
    return jnp.stack(out, axis=0)


def hex_words(digest):
    """Hex text of digests as message words.

    Args:
      digest: ``uint32[..., 4]``.

    Returns:
      ``uint32[..., 8]``: word ``m`` holds hex characters ``4m..4m+3`` (little-endian), i.e. the
      two digest bytes ``2m`` and ``2m+1``.
    """
    digest = jnp.asarray(digest, jnp.uint32)
    out = []
    for m in range(8):
        w = digest[..., m // 2]
        shift = 16 * (m % 2)
        b0 = (w >> jnp.uint32(shift)) & jnp.uint32(0xFF)
        b1 = (w >> jnp.uint32(shift + 8)) & jnp.uint32(0xFF)
        c0 = _hex_char(b0 >> jnp.uint32(4))
        c1 = _hex_char(b0 & jnp.uint32(0xF))
        c2 = _hex_char(b1 >> jnp.uint32(4))
        c3 = _hex_char(b1 & jnp.uint32(0xF))
        out.append(c0 | (c1 << jnp.uint32(8)) | (c2 << jnp.uint32(16)) | (c3 << jnp.uint32(24)))
    return jnp.stack(out, axis=-1)


def _bswap(x):
    return (
        (x >> jnp.uint32(24))
        | ((x >> jnp.uint32(8)) & jnp.uint32(0xFF00))
        | ((x << jnp.uint32(8)) & jnp.uint32(0xFF0000))
        | (x << jnp.uint32(24))
    )


def sort_keys(digest):
    """Big-endian words of the digest bytes: lexicographic order of keys = order of hex strings.

    Args:
      digest: ``uint32[..., 4]``.

    Returns:
      ``uint32[..., 4]``.
    """
    return _bswap(jnp.asarray(digest, jnp.uint32))


# -- host helpers (numpy) -----------------------------------------------------------------


def digest_to_bytes(digest) -> np.ndarray:
    """``uint32[..., 4]`` digests to ``uint8[..., 16]`` (the MD5 digest bytes)."""
    d = np.ascontiguousarray(np.asarray(digest, dtype="<u4"))
    return d.view(np.uint8).reshape(d.shape[:-1] + (16,))


def bytes_to_digest(b) -> np.ndarray:
    """``uint8[..., 16]`` digest bytes to ``uint32[..., 4]`` state words."""
    b = np.ascontiguousarray(np.asarray(b, dtype=np.uint8))
    return b.view("<u4").reshape(b.shape[:-1] + (4,)).astype(np.uint32)


_HEX_TABLE = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def digest_to_hex(digest_bytes) -> np.ndarray:
    """``uint8[..., 16]`` digest bytes to ``S32`` hex strings (numpy, vectorized)."""
    b = np.ascontiguousarray(np.asarray(digest_bytes, dtype=np.uint8))
    pairs = _HEX_TABLE[b]  # S2[..., 16]
    return np.ascontiguousarray(pairs).view("S32").reshape(b.shape[:-1])


def hex_to_digest(hexes) -> np.ndarray:
    """``S32`` (or ``str``) hex strings to ``uint8[..., 16]`` digest bytes (numpy).

    Raises:
      ValueError: an entry is not 32 hex digits.
    """
    arr = np.asarray(hexes)
    if arr.dtype.kind == "U":
        try:
            arr = np.char.encode(arr, "ascii")
        except UnicodeEncodeError:
            raise ValueError("hex digests must be ASCII") from None
    if arr.dtype.kind != "S":
        raise ValueError(f"hex digests must be strings, got dtype {arr.dtype}")
    if arr.dtype.itemsize != 32 or np.any(np.char.str_len(arr) != 32):
        raise ValueError("hex digests must be exactly 32 hex digits")
    chars = np.ascontiguousarray(arr.astype("S32")).view(np.uint8).reshape(arr.shape + (32,))
    chars = np.where((chars >= 65) & (chars <= 70), chars + 32, chars)  # accept upper case
    val = np.full(chars.shape, 255, np.int16)
    isdig = (chars >= 48) & (chars <= 57)
    isal = (chars >= 97) & (chars <= 102)
    val[isdig] = chars[isdig] - 48
    val[isal] = chars[isal] - 87
    if np.any(val == 255):
        raise ValueError("hex digests must be exactly 32 hex digits")
    return (val[..., 0::2] * 16 + val[..., 1::2]).astype(np.uint8)


def pack_message(data: bytes) -> np.ndarray:
    """Pad one message (host side) and pack it into ``uint32[16 * k]`` words."""
    n = len(data)
    k = num_blocks(n)
    buf = bytearray(64 * k)
    buf[:n] = data
    buf[n] = 0x80
    buf[-8:] = (8 * n).to_bytes(8, "little")
    return np.frombuffer(bytes(buf), dtype="<u4").astype(np.uint32)
