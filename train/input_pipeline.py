"""CIFAR-10 for the NAS-Bench-101 protocol: splits, normalisation, on-device augmentation.

Reference spec §6.5. Everything is loaded into numpy **once** (TensorFlow is only touched by
:func:`load_cifar10_tfds`); training then gathers uint8 images that live in device memory and
augments them inside ``jit`` with :func:`augment`, so no TensorFlow runs at training time::

    >>> ds = make_synthetic(image_size=8, train_size=64, eval_size=32, seed=0)
    >>> ds.train.images.shape, ds.train.images.dtype, ds.synthetic
    ((64, 8, 8, 3), dtype('uint8'), True)

Splits (exactly the original's, §6.5):

============  ==========================================  ===========================
split         source                                      images
============  ==========================================  ===========================
train         official ``data_batch_1..4`` in file order  40,000 (augmented)
train_eval    first ``eval_size`` images of data_batch_1  9,984 (no augmentation)
validation    first ``eval_size`` images of data_batch_5  9,984
test          first ``eval_size`` images of test_batch    9,984
============  ==========================================  ===========================

**tfds ordering.** ``tfds`` builds its ``cifar10`` ``train`` split from ``data_batch_1..5`` in
order, giving example *i* the id ``"train_%05d" % i``, but its writer **shuffles the stored
order** (examples are sorted by a hash of their key). ``tfds.load('cifar10', split='train[:40000]')``
is therefore *not* batches 1-4. :func:`load_cifar10_tfds` reads the whole split with its ``id``
feature and sorts by the index in the id, which restores official file order exactly; official
batch ``k`` is then ids ``10000·(k−1) … 10000·k − 1``. The same holds for ``test``.

Data order during training is a pure function of ``(seed, step)`` (:func:`batch_indices`), and
the augmentation of an example is a pure function of ``(key, stream position)``, so a resumed run
sees exactly the batches of an uninterrupted one, independent of the device count.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import pickle
import re
import tarfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax.errors import NASBenchError

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "DatasetError",
    "Split",
    "Dataset",
    "load_dataset",
    "load_cifar10_tfds",
    "load_cifar10_archive",
    "make_synthetic",
    "normalize",
    "augment",
    "batch_indices",
    "PAD",
]

#: Per-channel mean and std on the 0-255 scale, RGB order (§6.5, ``nasbench/lib/cifar.py``).
CIFAR_MEAN = (125.31, 122.95, 113.87)
CIFAR_STD = (62.99, 62.09, 66.70)
#: Zero padding on each side before the random crop (§6.5).
PAD = 4
#: Images per official CIFAR-10 batch file.
BATCH_FILE_SIZE = 10_000
_NUM_CLASSES = 10


class DatasetError(NASBenchError, ValueError):
    """A dataset is missing, corrupt or cannot be split as the protocol requires."""


@dataclasses.dataclass(frozen=True)
class Split:
    """One split held in host memory.

    Attributes:
      images: uint8[N, H, W, 3], RGB, HWC.
      labels: int32[N], class ids in ``[0, num_classes)``.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise DatasetError(f"images must be uint8[N,H,W,3], got {self.images.dtype}{list(self.images.shape)}")
        if self.labels.shape != self.images.shape[:1]:
            raise DatasetError(f"{self.labels.shape[0] if self.labels.ndim else 0} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int) -> "Split":
        """The first ``n`` examples (file order), as the original's evaluation uses."""
        return Split(self.images[:n], self.labels[:n])


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The four splits of one run plus provenance.

    Attributes:
      name: ``"cifar10"`` (tfds), ``"cifar10-archive"`` (official python archive) or ``"synthetic"``.
      synthetic: True when the images are generated (never CIFAR-10); carried into every output.
      train: the training images (augmented during training).
      train_eval: unaugmented first ``eval_size`` images of the first training batch file.
      validation: first ``eval_size`` images of the validation file.
      test: first ``eval_size`` images of the test file.
      source: where the data came from (data_dir, archive path or generator seed), for records.
    """

    name: str
    synthetic: bool
    train: Split
    train_eval: Split
    validation: Split
    test: Split
    source: str = ""
    num_classes: int = _NUM_CLASSES

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[1])


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_dataset(config: Any) -> Dataset:
    """Load the dataset named by ``config.dataset``.

    Args:
      config: a ConfigDict with ``dataset`` (``"cifar10"``, ``"synthetic"`` or a path to
        ``cifar-10-python.tar.gz``), ``eval_size``, ``train_size``, ``image_size`` and optional
        ``data_dir`` / ``data_seed``.

    Returns:
      A :class:`Dataset`.

    Raises:
      DatasetError: the dataset is unknown, missing or corrupt, or too small for the config.
    """
    name = str(config.dataset)
    eval_size = int(config.eval_size)
    if name == "synthetic":
        return make_synthetic(
            image_size=int(config.image_size),
            train_size=int(config.train_size),
            eval_size=eval_size,
            seed=int(config.get("data_seed", 0)),
            num_classes=int(config.num_labels),
        )
    if name == "cifar10":
        ds = load_cifar10_tfds(config.get("data_dir"), eval_size=eval_size)
    elif name.endswith((".tar.gz", ".tgz", ".tar")) or os.path.sep in name or os.path.exists(name):
        ds = load_cifar10_archive(name, eval_size=eval_size)
    else:
        raise DatasetError(f"unknown dataset {name!r}: use 'cifar10', 'synthetic' or a path to cifar-10-python.tar.gz")
    if int(config.image_size) != 32:
        raise DatasetError(f"CIFAR-10 images are 32x32 but config.image_size={config.image_size}")
    if int(config.train_size) != len(ds.train):
        raise DatasetError(
            f"config.train_size={config.train_size} but CIFAR-10 batches 1-4 hold {len(ds.train)} images"
        )
    return ds


def _splits_from_batches(
    train: Split, validation: Split, test: Split, eval_size: int, where: str
) -> tuple[Split, Split, Split, Split]:
    for name, split in (("validation", validation), ("test", test), ("train_eval", train)):
        if len(split) < eval_size:
            raise DatasetError(f"{where}: {name} has {len(split)} images, fewer than eval_size={eval_size}")
    # train_eval: the first eval_size images of the FIRST training file (data_batch_1).
    return train, train.head(eval_size), validation.head(eval_size), test.head(eval_size)


def load_cifar10_tfds(data_dir: str | None = None, *, eval_size: int = 9_984) -> Dataset:
    """CIFAR-10 through tensorflow-datasets, split by official batch file (module docstring).

    Never downloads: prepare the dataset first (``tfds build cifar10`` or
    ``tfds.builder('cifar10').download_and_prepare()``).

    Args:
      data_dir: tfds data directory (``None`` = the tfds default).
      eval_size: images per evaluation split (the original: 9,984 = 39·256).

    Returns:
      A :class:`Dataset` named ``"cifar10"``.

    Raises:
      DatasetError: tfds is not installed, the data is not prepared, or the stored ids do not
        identify the official batch order.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DatasetError("dataset 'cifar10' needs tensorflow-datasets: pip install 'nasbench-jax[tfds]'") from e

    def read(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            ds = tfds.load("cifar10", split=split, data_dir=data_dir, download=False, shuffle_files=False)
        except (AssertionError, tfds.core.registered.DatasetNotFoundError, FileNotFoundError, OSError) as e:
            raise DatasetError(
                f"CIFAR-10 not found by tfds (data_dir={data_dir!r}); prepare it with `tfds build cifar10`"
                f" or pass the path of cifar-10-python.tar.gz as the dataset: {e}"
            ) from None
        ids, images, labels = [], [], []
        try:
            for ex in tfds.as_numpy(ds.batch(BATCH_FILE_SIZE)):
                ids.extend(ex["id"].tolist())
                images.append(ex["image"])
                labels.append(ex["label"])
        except Exception as e:  # tf.errors.* while reading corrupt records
            raise DatasetError(f"reading tfds cifar10 {split!r} failed (corrupt data?): {type(e).__name__}: {e}") from None
        if not images:
            raise DatasetError(f"tfds cifar10 {split!r} is empty")
        return np.asarray(ids, dtype=object), np.concatenate(images), np.concatenate(labels)

    def in_file_order(split: str, prefix: str) -> Split:
        ids, images, labels = read(split)
        pattern = re.compile(rf"^{prefix}_(\d+)$")
        index = np.empty(len(ids), np.int64)
        for i, raw in enumerate(ids):
            m = pattern.match(raw.decode() if isinstance(raw, bytes) else str(raw))
            if m is None:
                raise DatasetError(
                    f"tfds cifar10 {split!r}: example id {raw!r} is not '{prefix}_NNNNN'; cannot recover the"
                    " official batch-file order the NAS-Bench-101 split needs"
                )
            index[i] = int(m.group(1))
        order = np.argsort(index, kind="stable")
        if not np.array_equal(index[order], np.arange(len(index))):
            raise DatasetError(f"tfds cifar10 {split!r}: ids are not a permutation of 0..{len(index) - 1}")
        return Split(np.ascontiguousarray(images[order], dtype=np.uint8), labels[order].astype(np.int32))

    full = in_file_order("train", "train")
    if len(full) != 5 * BATCH_FILE_SIZE:
        raise DatasetError(f"tfds cifar10 'train' has {len(full)} images, expected 50,000 (data_batch_1..5)")
    train = Split(full.images[: 4 * BATCH_FILE_SIZE], full.labels[: 4 * BATCH_FILE_SIZE])
    validation = Split(full.images[4 * BATCH_FILE_SIZE :], full.labels[4 * BATCH_FILE_SIZE :])
    test = in_file_order("test", "test")
    train, train_eval, validation, test = _splits_from_batches(train, validation, test, eval_size, "tfds cifar10")
    return Dataset("cifar10", False, train, train_eval, validation, test, source=f"tfds:{data_dir or 'default'}")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what the official CIFAR-10 batches contain (dicts, lists, numpy arrays).

    The archive is user-supplied, so arbitrary globals (code execution) are refused.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
        ("_codecs", "encode"),  # how Python 3 protocol-2 pickles store bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        module = {"numpy.core.multiarray": "numpy._core.multiarray", "copy_reg": "copyreg", "__builtin__": "builtins"}.get(
            module, module
        )
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):  # numpy 1.x names
            return super().find_class(module.replace("numpy._core", "numpy.core"), name)


def _read_batch(tar: tarfile.TarFile, member_name: str, path: str) -> Split:
    try:
        member = tar.getmember(member_name)
    except KeyError:
        raise DatasetError(f"{path}: missing {member_name} (not the official cifar-10-python.tar.gz?)") from None
    f = tar.extractfile(member)
    if f is None:
        raise DatasetError(f"{path}: {member_name} is not a regular file")
    try:
        d = _CifarUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, tarfile.TarError, OSError) as e:
        raise DatasetError(f"{path}: {member_name} is corrupt: {type(e).__name__}: {e}") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DatasetError(f"{path}: {member_name} is not a CIFAR-10 batch (needs b'data' and b'labels')")
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: {member_name} b'data' must be uint8[N,3072], got {data.dtype}{list(data.shape)}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{path}: {member_name} has {labels.shape} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        raise DatasetError(f"{path}: {member_name} has labels outside 0..9")
    # 3,072 bytes in CHW planar order (all R, then all G, then all B) -> HWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return Split(np.ascontiguousarray(images), labels.astype(np.int32))


def load_cifar10_archive(path: str | os.PathLike, *, eval_size: int = 9_984) -> Dataset:
    """Read the official ``cifar-10-python.tar.gz`` directly (no tfds, no TensorFlow).

    Args:
      path: the archive (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``, pickled
        dicts with ``b'data'`` uint8[10000, 3072] in CHW planar order and ``b'labels'``).
      eval_size: images per evaluation split.

    Returns:
      A :class:`Dataset` named ``"cifar10-archive"``.

    Raises:
      DatasetError: the file is missing, not a tar archive, lacks a batch or holds a corrupt one.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"dataset archive not found: {path}")
    try:
        with tarfile.open(path, "r:*") as tar:
            batches = [_read_batch(tar, f"cifar-10-batches-py/data_batch_{k}", path) for k in range(1, 6)]
            test = _read_batch(tar, "cifar-10-batches-py/test_batch", path)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DatasetError(f"{path} is not a readable cifar-10-python.tar.gz: {type(e).__name__}: {e}") from None
    train = Split(np.concatenate([b.images for b in batches[:4]]), np.concatenate([b.labels for b in batches[:4]]))
    train, train_eval, validation, test = _splits_from_batches(train, batches[4], test, eval_size, path)
    # train_eval must come from data_batch_1 alone (the original's first train file).
    if eval_size > len(batches[0]):
        raise DatasetError(f"{path}: eval_size={eval_size} exceeds data_batch_1 ({len(batches[0])} images)")
    return Dataset("cifar10-archive", False, train, train_eval, validation, test, source=os.path.abspath(path))


def make_synthetic(
    *, image_size: int, train_size: int, eval_size: int, seed: int = 0, num_classes: int = _NUM_CLASSES,
    noise: float = 48.0,
) -> Dataset:
    """A learnable offline stand-in for CIFAR-10 (never mistaken for it: ``synthetic=True``).

    Each class has a random mean colour plus a low-frequency pattern (a 4×4 grid of RGB offsets
    upsampled to the image size); an image is its class template shifted by up to 2 pixels, scaled in
    brightness, plus Gaussian pixel noise, clipped to uint8. Classes are separable but not
    trivially so (noise, shifts), and the same augmentation applies as for CIFAR-10.

    Args:
      image_size: H = W of the images (>= 4).
      train_size: training images; train_eval is their first ``eval_size``.
      eval_size: images in validation and in test (separate draws).
      seed: generator seed (explicit; the data is a pure function of the arguments).
      num_classes: number of classes.
      noise: std of the pixel noise on the 0-255 scale.

    Returns:
      A :class:`Dataset` named ``"synthetic"``.

    Raises:
      DatasetError: non-positive sizes or eval_size > train_size.
    """
    if image_size < 4 or train_size <= 0 or eval_size <= 0 or num_classes < 2:
        raise DatasetError(
            f"synthetic data needs image_size>=4, train_size>0, eval_size>0, num_classes>=2; got"
            f" {image_size}, {train_size}, {eval_size}, {num_classes}"
        )
    if eval_size > train_size:
        raise DatasetError(f"eval_size={eval_size} exceeds train_size={train_size} (train_eval is a prefix of train)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    # A distinct mean colour per class (survives global average pooling) plus a spatial pattern.
    colours = rng.uniform(50, 205, size=(num_classes, 1, 1, 3))
    grid = colours + rng.uniform(-40, 40, size=(num_classes, 4, 4, 3))
    reps = -(-image_size // 4)
    templates = np.repeat(np.repeat(grid, reps, axis=1), reps, axis=2)[:, :image_size, :image_size]

    def draw(n: int) -> Split:
        labels = rng.integers(0, num_classes, size=n).astype(np.int32)
        shifts = rng.integers(-2, 3, size=(n, 2))
        base = templates[labels]
        img = np.stack([np.roll(b, tuple(s), axis=(0, 1)) for b, s in zip(base, shifts)]) if n else base
        img = img * rng.uniform(0.8, 1.2, size=(n, 1, 1, 1)) + rng.normal(0, noise, size=img.shape)
        return Split(np.clip(np.rint(img), 0, 255).astype(np.uint8), labels)

    train, validation, test = draw(train_size), draw(eval_size), draw(eval_size)
    return Dataset(
        "synthetic", True, train, train.head(eval_size), validation, test,
        source=f"synthetic(seed={seed}, image_size={image_size})", num_classes=num_classes,
    )


# --------------------------------------------------------------------------------------------
# On-device preprocessing
# --------------------------------------------------------------------------------------------


def normalize(images: jax.Array) -> jax.Array:
    """Per-channel normalisation of the original (§6.5 step 3).

    Args:
      images: uint8 or float[..., 3] on the 0-255 scale.

    Returns:
      float32[...]: ``(x − CIFAR_MEAN) / CIFAR_STD``.
    """
    x = jnp.asarray(images).astype(jnp.float32)
    return (x - jnp.asarray(CIFAR_MEAN, jnp.float32)) / jnp.asarray(CIFAR_STD, jnp.float32)


def _augment_one(key: jax.Array, image: jax.Array) -> jax.Array:
    h, w, _ = image.shape
    padded = jnp.pad(image, ((PAD, PAD), (PAD, PAD), (0, 0)))  # zeros on the 0-255 scale
    k_y, k_x, k_f = jax.random.split(key, 3)
    dy = jax.random.randint(k_y, (), 0, 2 * PAD + 1)
    dx = jax.random.randint(k_x, (), 0, 2 * PAD + 1)
    crop = jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, 3))
    flip = jax.random.bernoulli(k_f, 0.5)
    return jnp.where(flip, crop[:, ::-1, :], crop)


def augment(key: jax.Array, positions: jax.Array, images: jax.Array) -> jax.Array:
    """Training augmentation of the original, on device: pad 4, random crop, random flip, normalise.

    The randomness of each image comes from ``fold_in(key, position)`` where ``position`` is its
    place in the training stream (``step·batch + slot``), so it does not depend on how the
    batch is split across devices or on where a run was resumed.

    Args:
      key: a PRNG key (typed or raw uint32[2]).
      positions: int32[B], stream positions of the images.
      images: uint8[B, H, W, 3].

    Returns:
      float32[B, H, W, 3], normalised; padded pixels equal ``(0 − mean)/std``.
    """
    keys = jax.vmap(lambda p: jax.random.fold_in(key, p))(positions)
    return normalize(jax.vmap(_augment_one)(keys, images))


# --------------------------------------------------------------------------------------------
# Data order
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    perm = np.random.default_rng(np.random.SeedSequence([seed, epoch, 0xDA7A])).permutation(n).astype(np.int32)
    perm.setflags(write=False)
    return perm


def batch_indices(seed: int, step: int, batch_size: int, num_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """Which training images form global batch ``step`` (shuffle the whole set, repeat).

    Like the original's ``shuffle(40000).repeat().batch(256)``: the stream is an endless sequence
    of epochs, each a fresh permutation; batch ``step`` holds stream positions
    ``step·B … step·B + B − 1`` (a batch may straddle two epochs). A pure function of its
    arguments, so resuming at ``step`` continues the exact stream.

    Args:
      seed: data-order seed.
      step: global step (>= 0).
      batch_size: global batch B.
      num_examples: training set size N.

    Returns:
      (indices int32[B] into the training set, positions int32[B] in the stream).
    """
    pos = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
    epochs = pos // num_examples
    idx = np.empty(batch_size, np.int32)
    for e in np.unique(epochs):
        sel = epochs == e
        idx[sel] = _epoch_permutation(seed, int(e), num_examples)[pos[sel] % num_examples]
    return idx, pos.astype(np.int32)
