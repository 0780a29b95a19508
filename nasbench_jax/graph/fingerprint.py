"""The original NAS-Bench-101 module hash (reference spec §3.1), bit-exact and batched.

``hash_module`` hashes ASCII strings whose layout is fixed by the vertex count and the degrees:

* initial vertex hash: MD5 of ``"(out, in, label)"`` — a function of three small integers, so it
  is a 7 x 7 x 5 lookup table built once with ``hashlib``;
* round update of vertex ``v``: MD5 of ``sorted(in hex) + "|" + sorted(out hex) + "|" + own hex``,
  ``32 * (in + out) + 34`` bytes, i.e. 1..4 MD5 blocks known from the degrees alone;
* final: MD5 of ``str(sorted(hex))``, ``36 * V`` bytes (2..5 blocks).

Hex digests sort like their bytes, so neighbour lists are sorted on the big-endian digest words.
The messages are assembled as uint32 words with static 1- and 2-byte shifts (the two ``|``
separators) and compressed by :mod:`nasbench_jax.graph.md5`.

Two execution paths share this message layout:

* traced (inside the user's ``jit``/``vmap``): every message padded to 4 blocks with a per-message
  block mask, 7 rounds in a ``lax.fori_loop`` with per-cell activity masks;
* host (concrete arrays, the fast path): identical cells are hashed once; ``(cell, vertex)``
  messages are bucketed by their block count on the host once (degrees do not change across
  rounds), each bucket is padded to one of a few static sizes and compressed exactly as many
  blocks as it needs; the MD5 compression runs as one jitted kernel per block.

Example::

    >>> import numpy as np
    >>> from nasbench_jax.graph import fingerprint_hex
    >>> adj = np.zeros((1, 7, 7), np.uint8); adj[0, 0, 1] = 1
    >>> ops = np.array([[-1, -2, -3, -3, -3, -3, -3]], np.int8)
    >>> fingerprint_hex((adj, ops, np.array([2]))).tolist()
    [b'043721b9c7fe8c5fad811d47d83132ec']
"""

from __future__ import annotations

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nasbench_jax import constants as C
from nasbench_jax.graph import md5
from nasbench_jax.graph.checks import check_cells, is_traced

__all__ = [
    "fingerprint",
    "fingerprint_hex",
    "fingerprint_traced",
    "digest_to_hex",
    "hex_to_digest",
]

_V = C.MAX_VERTICES
_BAR = 0x7C  # '|'
_QUOTE = 0x27  # "'"
_COMMA = 0x2C
_SPACE = 0x20
_LBRACK = 0x5B
_RBRACK = 0x5D
_LABEL_OFFSET = 2  # label -2..2 -> table index 0..4


def _build_init_table() -> np.ndarray:
    table = np.zeros((_V, _V, 5, 4), np.uint32)
    for o in range(_V):
        for i in range(_V):
            for lab in range(-2, 3):
                d = hashlib.md5(str((o, i, lab)).encode()).digest()
                table[o, i, lab + _LABEL_OFFSET] = np.frombuffer(d, "<u4")
    return table


#: Initial vertex digests, indexed ``[out_degree, in_degree, label + 2]`` -> ``uint32[4]``.
INIT_TABLE = _build_init_table()

#: Block count of a round message of a vertex with total degree ``d`` (index ``d``).
ROUND_BLOCKS = np.array([md5.num_blocks(32 * d + 34) for d in range(2 * _V)], np.int32)
#: Block count of the final message of a cell with ``V`` vertices (index ``V``).
FINAL_BLOCKS = np.array([md5.num_blocks(36 * v) for v in range(_V + 1)], np.int32)


def digest_to_hex(digests) -> np.ndarray:
    """``uint8[..., 16]`` digests to ``S32`` lowercase hex (numpy)."""
    return md5.digest_to_hex(np.asarray(digests))


def hex_to_digest(hexes) -> np.ndarray:
    """``S32``/``str`` hex digests (array or list) to ``uint8[..., 16]``.

    Raises:
      ValueError: an entry is not exactly 32 hex digits.
    """
    return md5.hex_to_digest(hexes)


# -- message construction (pure jnp, column layout: word axis first) ----------------------


def _shift_bytes(s, nbytes: int):
    """Shift a word stream ``[W, M]`` towards later bytes by ``nbytes`` (1..3), zero-filled."""
    prev = jnp.concatenate([jnp.zeros_like(s[:1]), s[:-1]], axis=0)
    return (s << jnp.uint32(8 * nbytes)) | (prev >> jnp.uint32(32 - 8 * nbytes))


def _assemble_round(stream, a, b, masked: bool):
    """Round-update messages from their aligned hex stream.

    Args:
      stream: ``uint32[16k, M]``: the hex words of the sorted in-neighbours, then the sorted
        out-neighbours, then the vertex itself, 8 words each, zero after.
      a, b: ``int32[M]`` in- and out-degree of each message's vertex.
      masked: put the bit length in the message's own last block (messages of different block
        counts padded to ``k`` blocks) instead of in block ``k``.

    Returns:
      ``uint32[16k, M]`` padded MD5 message words of ``in|out|own``.
    """
    w = stream.shape[0]
    j = jnp.arange(w, dtype=jnp.int32)[:, None]
    s1 = _shift_bytes(stream, 1)
    s2 = _shift_bytes(stream, 2)
    e1 = 8 * a[None, :]
    e2 = 8 * (a + b)[None, :]
    words = jnp.where(j < e1, stream, jnp.where(j < e2, s1, s2))
    # first '|' starts word e1 (only when out-list is non-empty; otherwise word e1 == e2)
    first_bar = (s1 & jnp.uint32(0xFFFFFF00)) | jnp.uint32(_BAR)
    words = jnp.where((j == e1) & (j < e2), first_bar, words)
    low = jnp.where(b[None, :] > 0, s1 & jnp.uint32(0xFF), jnp.uint32(_BAR))
    second = (s2 & jnp.uint32(0xFFFF0000)) | jnp.uint32(_BAR << 8) | low
    words = jnp.where(j == e2, second, words)
    words = jnp.where(j == e2 + 8, words | jnp.uint32(0x80 << 16), words)
    length_bits = (8 * (32 * (a + b) + 34)).astype(jnp.uint32)[None, :]
    if masked:
        nb = jnp.asarray(ROUND_BLOCKS)[a + b][None, :]
        pos = 16 * nb - 2
    else:
        pos = w - 2
    return jnp.where(j == pos, length_bits, words)


def _final_words(hexw_sorted, nv):
    """Final messages ``str(sorted(hex))`` of cells.

    Args:
      hexw_sorted: ``uint32[8, 7, M]``: hex words of each cell's vertex hashes in sorted order
        (positions ``>= V`` arbitrary).
      nv: ``int32[M]`` vertex counts.

    Returns:
      ``uint32[80, M]`` padded message words: 5 blocks, of which the first ``FINAL_BLOCKS[V]``
      are the message (the bit length sits at the end of block ``FINAL_BLOCKS[V]``).
    """
    h = hexw_sorted
    m = h.shape[-1]
    pos = jnp.arange(_V, dtype=jnp.int32)[:, None]  # [7, 1]
    live = pos < nv[None, :]  # [7, M]
    last = pos == (nv[None, :] - 1)
    chunk = [(h[0] << jnp.uint32(8)) | jnp.uint32(_QUOTE)]
    for t in range(1, 8):
        chunk.append((h[t] << jnp.uint32(8)) | (h[t - 1] >> jnp.uint32(24)))
    tail_sep = jnp.uint32(_QUOTE << 8 | _COMMA << 16 | _SPACE << 24)
    tail_end = jnp.uint32(_QUOTE << 8 | _RBRACK << 16 | 0x80 << 24)
    chunk.append((h[7] >> jnp.uint32(24)) | jnp.where(last, tail_end, tail_sep))
    chunk = jnp.stack(chunk, axis=0)  # [9, 7, M]
    chunk = jnp.where(live[None], chunk, jnp.uint32(0))
    s = jnp.transpose(chunk, (1, 0, 2)).reshape(9 * _V, m)  # [63, M]
    s = jnp.concatenate([s, jnp.zeros((80 - 9 * _V, m), jnp.uint32)], axis=0)
    words = _shift_bytes(s, 1)
    words = words.at[0].set(words[0] | jnp.uint32(_LBRACK))
    length_bits = (8 * 36 * nv).astype(jnp.uint32)[None, :]
    j = jnp.arange(80, dtype=jnp.int32)[:, None]
    p = 16 * jnp.asarray(FINAL_BLOCKS)[nv][None, :] - 2
    return jnp.where(j == p, length_bits, words)


def _ranks(digests, valid):
    """Rank of each vertex's hash within its cell (ties by index; invalid vertices last).

    Args:
      digests: ``uint32[n, 7, 4]``; valid: ``bool[n, 7]``.

    Returns:
      ``int32[n, 7]`` a permutation of ``0..6`` per cell.
    """
    keys = md5.sort_keys(digests)  # [n, 7, 4]
    ku = keys[:, :, None, :]  # u
    kv = keys[:, None, :, :]  # v
    less = jnp.zeros((keys.shape[0], _V, _V), bool)
    eq = jnp.ones_like(less)
    for t in range(4):
        lt = ku[..., t] < kv[..., t]
        less = less | (eq & lt)
        eq = eq & (ku[..., t] == kv[..., t])
    idx = jnp.arange(_V)
    tie = eq & (idx[:, None] < idx[None, :])
    vu = valid[:, :, None]
    vv = valid[:, None, :]
    before = (vu & ~vv) | ((vu == vv) & (less | tie))  # u sorts before v
    return jnp.sum(before, axis=1).astype(jnp.int32)


def _stream_slots(rank, adj):
    """Per ``(cell, vertex)`` message, the vertex in each of the 7 stream slots.

    Slot order: in-neighbours by rank, out-neighbours by rank, the vertex itself; slots past
    that hold ``7`` (a zero hash).

    Args:
      rank: ``int32[n, 7]``; adj: ``uint8/bool[n, 7, 7]``.

    Returns:
      ``int32[n, 7 (vertex), 7 (slot)]``.
    """
    a = adj.astype(bool)
    idx = jnp.arange(_V)
    is_in = jnp.transpose(a, (0, 2, 1))  # [n, v, w]: w -> v
    is_out = a  # [n, v, w]: v -> w
    is_own = jnp.broadcast_to(idx[:, None] == idx[None, :], a.shape)
    group = jnp.where(is_in, 0, jnp.where(is_out, 1, jnp.where(is_own, 2, 3)))
    key = group * 8 + rank[:, None, :]  # [n, v, w], distinct over w
    pos = jnp.sum(key[:, :, :, None] < key[:, :, None, :], axis=2)  # [n, v, w]: slot of w
    member = group < 3
    onehot = (pos[..., None] == idx) & member[..., None]  # [n, v, w, s]
    slot = jnp.sum(jnp.where(onehot, idx[None, None, :, None], 0), axis=2)
    filled = jnp.any(onehot, axis=2)
    return jnp.where(filled, slot, _V).astype(jnp.int32)


def _init_digests(adj, ops):
    a = adj.astype(jnp.int32)
    out_deg = a.sum(-1)
    in_deg = a.sum(-2)
    lab = jnp.clip(ops.astype(jnp.int32) + _LABEL_OFFSET, 0, 4)
    return jnp.asarray(INIT_TABLE)[out_deg, in_deg, lab]  # [..., 7, 4]


def _digest_bytes_jnp(d):
    shifts = jnp.arange(4, dtype=jnp.uint32) * jnp.uint32(8)
    b = (d[..., :, None] >> shifts) & jnp.uint32(0xFF)
    return b.reshape(d.shape[:-1] + (16,)).astype(jnp.uint8)


def _md5_masked_cols(words, nblocks):
    """``uint32[16k, M]`` words, ``int32[M]`` block counts -> ``uint32[4, M]`` (lax.scan)."""
    k = words.shape[0] // 16
    m = words.shape[1]
    blocks = words.reshape(k, 16, m)
    a0, b0, c0, d0 = (jnp.full((m,), v, jnp.uint32) for v in md5.INIT_STATE)
    init = (_pack(a0, b0), _pack(c0, d0))  # packed state: see _compress_cols

    def body(carry, xs):
        state, i = carry
        a, b, c, d = md5.compress(_unpack(state[0]) + _unpack(state[1]), [xs[t] for t in range(16)])
        use = nblocks > i
        state = tuple(jnp.where(use, n_, s_) for n_, s_ in zip((_pack(a, b), _pack(c, d)), state))
        return (state, i + 1), None

    (state, _), _ = lax.scan(body, (init, jnp.int32(0)), blocks)
    return _unpack_state(state)


def fingerprint_traced(adjacency, operations, num_vertices):
    """The module hash as pure ``jnp`` (any leading batch shape; no checks; traceable).

    Args:
      adjacency: ``[..., 7, 7]`` 0/1 of *pruned* cells; operations: ``[..., 7]``;
      num_vertices: ``[...]``.

    Returns:
      ``uint8[..., 16]`` digests.
    """
    adjacency = jnp.asarray(adjacency)
    lead = adjacency.shape[:-2]
    adj = adjacency.reshape((-1, _V, _V)).astype(jnp.uint8)
    ops = jnp.asarray(operations).reshape((-1, _V))
    nv = jnp.asarray(num_vertices).reshape((-1,)).astype(jnp.int32)
    n = adj.shape[0]
    idx = jnp.arange(_V)
    valid = idx[None, :] < nv[:, None]
    deg = adj.astype(jnp.int32).sum(-1) + adj.astype(jnp.int32).sum(-2)  # [n, 7]
    a_in = adj.astype(jnp.int32).sum(-2).reshape(-1)
    b_out = adj.astype(jnp.int32).sum(-1).reshape(-1)
    nblk = jnp.asarray(ROUND_BLOCKS)[deg].reshape(-1)
    d0 = _init_digests(adj, ops)  # [n, 7, 4]

    def round_fn(r, d):
        rank = _ranks(d, valid)
        slots = _stream_slots(rank, adj)  # [n, 7, 7]
        hexw = md5.hex_words(d)  # [n, 7, 8]
        hexz = jnp.concatenate([hexw, jnp.zeros((n, 1, 8), jnp.uint32)], axis=1)
        gathered = jax.vmap(lambda hz, sl: hz[sl])(hexz, slots)  # [n, 7, 7, 8]
        stream = gathered.reshape(n * _V, 56).T
        stream = jnp.concatenate([stream, jnp.zeros((8, n * _V), jnp.uint32)], axis=0)
        words = _assemble_round(stream, a_in, b_out, masked=True)
        new = _md5_masked_cols(words, nblk).T.reshape(n, _V, 4)
        active = valid & (r < nv)[:, None]
        return jnp.where(active[..., None], new, d)

    d = lax.fori_loop(0, _V, round_fn, d0)
    rank = _ranks(d, valid)
    order = jnp.argsort(rank, axis=-1)  # vertex at each sorted position
    d_sorted = jnp.take_along_axis(d, order[..., None], axis=1)
    hexw = md5.hex_words(d_sorted)  # [n, 7, 8]
    words = _final_words(jnp.transpose(hexw, (2, 1, 0)), nv)
    final = _md5_masked_cols(words, jnp.asarray(FINAL_BLOCKS)[nv]).T  # [n, 4]
    return _digest_bytes_jnp(final).reshape(lead + (16,))


# -- host fast path -----------------------------------------------------------------------

#: Static shapes of the host path: ``(cells per chunk, messages per compression call)``. A batch
#: is cut into chunks of the smallest level that holds it (or of the largest), and each
#: block-count bucket into pieces of that level's message count, so jit compiles few shapes.
_LEVELS = ((512, 1024), (4096, 4096), (32768, 16384))


def _level(n: int):
    for cells, msgs in _LEVELS:
        if n <= cells:
            return cells, msgs
    return _LEVELS[-1]


def _packing() -> bool:
    """Whether MD5 states travel bit-cast into ``complex64`` (an XLA:CPU speed-up, see below).

    Only on the CPU backend, where it was measured and is tested bit-exact on NaN, Inf and
    denormal patterns. Accelerators may flush float denormals even when only moving floats, so
    other backends carry each pair of words as a plain ``uint32[2, M]`` array.
    """
    return jax.default_backend() == "cpu"


def _pack(x, y):
    """Two ``uint32[M]`` words as one ``complex64[M]`` (bit casts only: bit-exact, any pattern)."""
    if not _packing():
        return jnp.stack([x, y])
    return lax.complex(lax.bitcast_convert_type(x, jnp.float32), lax.bitcast_convert_type(y, jnp.float32))


def _unpack(z):
    """Inverse of :func:`_pack`."""
    if not jnp.issubdtype(z.dtype, jnp.complexfloating):
        return z[0], z[1]
    return lax.bitcast_convert_type(lax.real(z), jnp.uint32), lax.bitcast_convert_type(lax.imag(z), jnp.uint32)


def _unpack_state(p):
    """Packed state ``(complex64[M], complex64[M])`` -> ``uint32[4, M]``."""
    return jnp.stack(_unpack(p[0]) + _unpack(p[1]), axis=0)


@jax.jit
def _compress_cols(state, words):
    """One MD5 block for ``M`` messages on a *packed* state.

    Args:
      state: ``(complex64[M], complex64[M])``: the state words ``(A, B)`` and ``(C, D)``, each
        pair bit-cast into one 64-bit element (see :func:`_pack`).
      words: ``uint32[16, M]`` the block's message words.

    Returns:
      The new packed state.

    Why packed: XLA:CPU emits one loop fusion per output array and recomputes the whole
    64-step chain in each; with four ``uint32`` outputs (or a stacked ``[4, M]`` output, whose
    rows are computed separately) the chain ran about four times. Two 64-bit outputs halve
    that (measured ~1.7x more compressions/s).
    """
    a, b, c, d = md5.compress(_unpack(state[0]) + _unpack(state[1]), [words[t] for t in range(16)])
    return _pack(a, b), _pack(c, d)


def _md5_cols(blocks):
    """Unmasked multi-block MD5 by repeated single-block calls.

    Args:
      blocks: a sequence of ``k`` arrays ``uint32[16, M]`` (the message blocks in order).

    Returns:
      The packed digests ``(complex64[M], complex64[M])`` (:func:`_unpack_state` gives
      ``uint32[4, M]``).

    One jitted call per block: XLA:CPU fuses consecutive compressions into one huge loop
    fusion that runs an order of magnitude slower, so blocks are chained from Python.
    """
    m = blocks[0].shape[1]
    state = _init_cols(m)
    for blk in blocks:
        state = _compress_cols(state, blk)
    return state


@functools.lru_cache(maxsize=None)
def _init_cols(m: int):
    init = [jnp.full((m,), v, jnp.uint32) for v in md5.INIT_STATE]
    return jax.jit(lambda a, b, c, d: (_pack(a, b), _pack(c, d)))(*init)


_unpack_cols = jax.jit(_unpack_state)


def _ranks_cols(keys, valid):
    """:func:`_ranks` from sort keys in column layout ``uint32[4, n, 7]``."""
    less = jnp.zeros((keys.shape[1], _V, _V), bool)
    eq = jnp.ones_like(less)
    for t in range(4):
        ku = keys[t][:, :, None]
        kv = keys[t][:, None, :]
        less = less | (eq & (ku < kv))
        eq = eq & (ku == kv)
    idx = jnp.arange(_V)
    tie = eq & (idx[:, None] < idx[None, :])
    vu = valid[:, :, None]
    vv = valid[:, None, :]
    before = (vu & ~vv) | ((vu == vv) & (less | tie))
    return jnp.sum(before, axis=1, dtype=jnp.int32)


def _build_slot_table() -> np.ndarray:
    """Stream layout of a message from its neighbour bitmasks in *sorted-position* space.

    Index ``in_mask * 128 + out_mask`` (bit ``p`` set: the vertex at sorted position ``p`` is an
    in-/out-neighbour) -> ``int32[8]``: the sorted positions of the in-neighbours in order,
    then of the out-neighbours, then ``7`` (the vertex itself), then ``8`` (empty slot).
    """
    table = np.full((128 * 128, 8), 8, np.int32)
    for inm in range(128):
        ins = [p for p in range(_V) if inm >> p & 1]
        for outm in range(128):
            lst = ins + [p for p in range(_V) if outm >> p & 1] + [_V]
            if len(lst) <= 8:  # every real message (at most 6 neighbours + itself)
                table[inm * 128 + outm, : len(lst)] = lst
    return table


_SLOT_TABLE = _build_slot_table()


@jax.jit
def _slot_cols_step(rank, adj_i):
    """Per message, the digest column of each of its 8 stream slots (see :func:`_slot_cols`).

    Neighbour lists are sorted by hash through the ranks: a vertex's in- and out-neighbours as
    7-bit masks over sorted positions, one table lookup for the slot layout, and the vertex at
    each sorted position. All ``[n, 7, 7]``/``[n, 7, 8]`` work (no ``[n, 7, 7, 7]`` products).
    """
    n = rank.shape[0]
    idx = jnp.arange(_V, dtype=jnp.int32)
    bit = jnp.left_shift(jnp.int32(1), rank)  # [n, 7]: bit of each vertex's sorted position
    inm = jnp.sum(adj_i * bit[:, :, None], axis=1)  # [n, v]: over w with w -> v
    outm = jnp.sum(adj_i * bit[:, None, :], axis=2)  # [n, v]: over w with v -> w
    ent = jnp.asarray(_SLOT_TABLE).at[inm * 128 + outm].get(mode="clip")  # [n, v, 8]
    # vertex at each sorted position (rank is a permutation of 0..6 per cell)
    order = jnp.sum(jnp.where(rank[:, :, None] == idx[None, None, :], idx[None, :, None], 0), axis=1)
    vert = jnp.take_along_axis(order[:, None, :], jnp.minimum(ent, _V - 1), axis=2, mode="clip")
    base = (jnp.arange(n, dtype=jnp.int32) * _V)[:, None, None]
    own = idx[None, :, None]
    cols = jnp.where(ent < _V, base + vert, jnp.where(ent == _V, base + own, n * _V))
    return cols.reshape(n * _V, 8).T


@jax.jit
def _rank_step(d, valid):
    n = valid.shape[0]
    return _ranks_cols(md5.sort_keys(d[:, : n * _V]).reshape(4, n, _V), valid)


def _slot_cols(d, adj_i, valid):
    """Per message, the digest column of each of its 8 stream slots (``int32[8, n*7]``).

    Args:
      d: ``uint32[4, n*7 + 1]`` current digests (last column scratch);
      adj_i: ``int32[n, 7, 7]`` 0/1; valid: ``bool[n, 7]``.

    Returns:
      ``int32[8, n*7]``; empty slots point at the scratch column ``n*7`` (zeroed by the consumer).

    Two separately jitted stages: compiled as one program, XLA:CPU fuses the ranks into their
    consumers and recomputes them per output element.
    """
    return _slot_cols_step(_rank_step(d, valid), adj_i)


@jax.jit
def _digest_rows(d):
    """``uint32[4, M]`` digests -> ``uint32[M, 4]`` rows (one 16-byte row per gathered hash)."""
    return d.T


def _prep_round(d, adj_i, valid):
    """``(digest rows uint32[n*7 + 1, 4], slot_cols int32[8, n*7])`` for one round.

    Separate jitted calls (see :func:`_slot_cols`).
    """
    return _digest_rows(d), _slot_cols(d, adj_i, valid)


@functools.partial(jax.jit, static_argnames=("k",))
def _bucket_words(drows, cols, gidx, a, b, k: int):
    """Message blocks (``k`` arrays ``uint32[16, m]``) of the bucket messages ``gidx``.

    Gathers whole 16-byte digests (half the bytes of their hex text; random row gathers are
    the expensive part here) and converts them to hex words after the gather. Slots past the
    vertex's own hash (the scratch column, whatever it holds) are zeroed.
    """
    m = gidx.shape[0]
    sl = cols.at[: 2 * k, gidx].get(mode="clip")  # [2k, m]; indices in range by construction
    dg = drows.at[sl].get(mode="clip")  # [2k, m, 4]
    hx = md5.hex_words_cols(jnp.transpose(dg, (2, 0, 1)).reshape(4, 2 * k * m)).reshape(8, 2 * k, m)
    live = jnp.arange(2 * k, dtype=jnp.int32)[:, None] <= (a + b)[None, :]  # slot <= own slot
    hx = jnp.where(live[None], hx, jnp.uint32(0))
    stream = jnp.transpose(hx, (1, 0, 2)).reshape(16 * k, m)
    words = _assemble_round(stream, a, b, masked=False)
    return tuple(words[16 * i : 16 * (i + 1)] for i in range(k))


@functools.partial(jax.jit, donate_argnums=0)
def _scatter(d, sidx, new):
    """``d[:, sidx] = unpack(new)`` in place (``d`` is donated: the caller drops its reference)."""
    return d.at[:, sidx].set(_unpack_state(new))


@jax.jit
def _take_final(words, g):
    """The 5 final-message blocks (``uint32[16, m]`` each) of cells ``g``.

    Always all 5 (one compiled shape); callers compress only the first ``FINAL_BLOCKS[V]``.
    """
    return tuple(words[16 * i : 16 * (i + 1)].at[:, g].get(mode="clip") for i in range(5))


@jax.jit
def _final_prep(d, rank, nv):
    """Final message words ``uint32[80, n]`` from the digests and their in-cell ranks.

    The digests are put in sorted order by a one-hot select over ``[n, 7, 7]`` (no sort, no
    gather: cheaper to compile and to run on XLA:CPU than ``argsort`` + ``take_along_axis``).
    """
    n = nv.shape[0]
    dc = d[:, : n * _V].reshape(4, n, _V, 1)  # [4, n, v, 1]
    onehot = rank[:, :, None] == jnp.arange(_V, dtype=jnp.int32)[None, None, :]  # [n, v, p]
    d_sorted = jnp.sum(jnp.where(onehot[None], dc, jnp.uint32(0)), axis=2, dtype=jnp.uint32)
    hexw = md5.hex_words_cols(d_sorted.reshape(4, n * _V)).reshape(8, n, _V)
    return _final_words(jnp.transpose(hexw, (0, 2, 1)), nv)


def _pieces(idx: np.ndarray, size: int, pad_gather: int, pad_scatter: int):
    """Split message indices into pieces of ``size``: ``(gather idx, scatter idx)`` pairs."""
    out = []
    for start in range(0, len(idx), size):
        part = idx[start : start + size]
        g = np.full(size, pad_gather, np.int32)
        s = np.full(size, pad_scatter, np.int32)
        g[: len(part)] = part
        s[: len(part)] = part
        out.append((g, s))
    return out


def _hash_chunk(adj: np.ndarray, ops: np.ndarray, nv: np.ndarray) -> np.ndarray:
    """Host fast path on one chunk of (distinct) cells; returns ``uint32[n, 4]`` digests."""
    n_real = adj.shape[0]
    n, msize = _level(n_real)
    if n > n_real:  # pad with inactive cells (num_vertices 0: no messages)
        adj = np.concatenate([adj, np.zeros((n - n_real, _V, _V), np.uint8)])
        ops = np.concatenate([ops, np.full((n - n_real, _V), C.PAD_LABEL, np.int8)])
        nv = np.concatenate([nv, np.zeros(n - n_real, np.int32)])
    idx = np.arange(_V)
    valid = idx[None, :] < nv[:, None]
    out_deg = adj.sum(-1, dtype=np.int32)
    in_deg = adj.sum(-2, dtype=np.int32)
    lab = np.clip(ops.astype(np.int32) + _LABEL_OFFSET, 0, 4)
    d0 = INIT_TABLE[out_deg, in_deg, lab].reshape(n * _V, 4)
    d = np.zeros((4, n * _V + 1), np.uint32)
    d[:, : n * _V] = d0.T
    d = jnp.asarray(d)
    a_all = in_deg.reshape(-1)
    b_all = out_deg.reshape(-1)
    kblk = ROUND_BLOCKS[a_all + b_all]
    valid_j = jnp.asarray(valid)
    adj_j = jnp.asarray(adj.astype(np.int32))
    scratch = n * _V
    plan_cache: dict = {}
    for r in range(_V):
        active = (valid & (r < nv)[:, None]).reshape(-1)
        if not active.any():
            break
        key = active.tobytes()
        if key not in plan_cache:
            plan = []
            for k in range(1, 5):
                sel = np.flatnonzero(active & (kblk == k)).astype(np.int32)
                for g, s in _pieces(sel, msize, 0, scratch):
                    plan.append((k, jnp.asarray(g), jnp.asarray(s), jnp.asarray(a_all[g]), jnp.asarray(b_all[g])))
            plan_cache = {key: plan}
        drows, cols = _prep_round(d, adj_j, valid_j)
        new_parts = []
        for k, g, s, a, b in plan_cache[key]:
            words = _bucket_words(drows, cols, g, a, b, k=k)
            new_parts.append((s, _md5_cols(words)))
        for s, new in new_parts:
            d = _scatter(d, s, new)
    words = _final_prep(d, _rank_step(d, valid_j), jnp.asarray(nv))
    out = np.zeros((n_real, 4), np.uint32)
    for v in range(2, _V + 1):
        sel = np.flatnonzero(nv[:n_real] == v).astype(np.int32)
        if not len(sel):
            continue
        kf = int(FINAL_BLOCKS[v])
        for start in range(0, len(sel), msize):
            part = sel[start : start + msize]
            g = np.zeros(msize, np.int32)
            g[: len(part)] = part
            res = np.asarray(_unpack_cols(_md5_cols(_take_final(words, jnp.asarray(g))[:kf]))).T
            out[part] = res[: len(part)]
    return out


def labelled_codes(adj: np.ndarray, ops: np.ndarray, nv: np.ndarray) -> np.ndarray:
    """``uint32[N]``: ``V << 29 | A << 8 | O`` of each cell *as given* (no minimisation).

    Injective on valid encoded cells; used to hash identical cells once.
    """
    ys, xs = np.triu_indices(_V, 1)[1], np.triu_indices(_V, 1)[0]
    bits = (xs + ys * (ys - 1) // 2).astype(np.uint32)
    a = (adj[:, xs, ys].astype(np.uint32) << bits).sum(-1, dtype=np.uint32)
    o = np.zeros(adj.shape[0], np.uint32)
    pos = np.arange(1, 6)
    interior = pos[None, :] < (nv[:, None] - 1)
    digits = np.where(interior, ops[:, 1:6].astype(np.int64), 0).astype(np.uint32)
    for t in range(5):
        o = o * np.uint32(3) + digits[:, t]
    return (nv.astype(np.uint32) << np.uint32(29)) | (a << np.uint32(8)) | o


_CHUNK_CELLS = _LEVELS[-1][0]


def _fingerprint_host(adj, ops, nv, progress: bool = False) -> np.ndarray:
    lead = adj.shape[:-2]
    adj = adj.reshape(-1, _V, _V)
    ops = ops.reshape(-1, _V)
    nv = nv.reshape(-1)
    if adj.shape[0] == 0:
        return np.zeros(lead + (16,), np.uint8)
    codes = labelled_codes(adj, ops, nv)
    _, first, inv = np.unique(codes, return_index=True, return_inverse=True)
    ua, uo, un = adj[first], ops[first], nv[first]
    digests = np.zeros((len(first), 4), np.uint32)
    starts = range(0, len(first), _CHUNK_CELLS)
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        starts = tqdm(starts, desc="fingerprints", unit="chunk")
    for start in starts:
        sl = slice(start, start + _CHUNK_CELLS)
        digests[sl] = _hash_chunk(ua[sl], uo[sl], un[sl])
    return md5.digest_to_bytes(digests[inv.reshape(-1)]).reshape(lead + (16,))


def fingerprint(adjacency, operations, num_vertices, *, progress: bool = False):
    """The original module hash of already-pruned cells, as digest bytes.

    Inside ``jit``/``vmap`` (tracer arguments) this is :func:`fingerprint_traced` (no checks).
    With concrete arrays the batch is validated (:func:`~nasbench_jax.graph.check_cells`,
    ``pruned=True``) and hashed by the host-driven fast path.

    Args:
      adjacency: ``uint8[..., 7, 7]`` pruned cells (every vertex on an input->output path).
      operations: ``int8[..., 7]``.
      num_vertices: ``int32[...]`` in ``2..7``.
      progress: show a tqdm bar over chunks of 32,768 distinct cells (host path).

    Returns:
      ``uint8[..., 16]`` MD5 digest bytes (numpy on the host path, ``jax.Array`` when traced);
      ``digest_to_hex`` gives the 32-hex key of the original dataset.

    Raises:
      CellArrayError, CellArrayTypeError: see ``check_cells``.
    """
    if is_traced(adjacency, operations, num_vertices):
        return fingerprint_traced(adjacency, operations, num_vertices)
    adj, ops, nv = check_cells(adjacency, operations, num_vertices, pruned=True)
    return _fingerprint_host(adj, ops, nv, progress=progress)


def fingerprint_hex(cells, *, progress: bool = False) -> np.ndarray:
    """Host convenience: ``S32`` hex module hashes of a ``Cells`` batch (or 3-tuple).

    Raises:
      CellArrayError, CellArrayTypeError: see ``check_cells``.
    """
    adj, ops, nv = cells
    return digest_to_hex(fingerprint(adj, ops, nv, progress=progress))
