"""Data parity with the original (reference spec §6.5): splits, order, normalisation, augmentation."""

import io
import pickle
import tarfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from train import input_pipeline as ip

MEAN = np.array([125.31, 122.95, 113.87], np.float32)
STD = np.array([62.99, 62.09, 66.70], np.float32)


def encoded_images(batch_id, n):
    """HWC uint8 images whose pixels encode (batch file, index in file); labels = index % 10."""
    imgs = np.zeros((n, 32, 32, 3), np.uint8)
    imgs[:, 0, 0, 0] = batch_id
    imgs[:, 0, 0, 1] = np.arange(n) % 256
    imgs[:, 0, 0, 2] = np.arange(n) // 256
    imgs[:, 5, 7, :] = [11, 22, 33]  # an asymmetric pixel to catch HWC/CHW mix-ups
    return imgs, (np.arange(n) % 10).astype(np.int64)


def write_archive(path, n=30, corrupt=None, omit=None):
    """A small cifar-10-python.tar.gz in the official format (pickled dicts, CHW planar rows)."""
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    with tarfile.open(path, "w:gz") as tar:
        for bid, name in enumerate(names, start=1):
            if name == omit:
                continue
            imgs, labels = encoded_images(bid, n)
            rows = imgs.transpose(0, 3, 1, 2).reshape(n, 3072)  # HWC -> CHW planar bytes
            payload = pickle.dumps({b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": rows,
                                    b"filenames": [b"x.png"] * n}, protocol=2)
            if name == corrupt:
                payload = payload[: len(payload) // 2]
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def check_batch_membership(ds, n, eval_size):
    tr = ds.train.images
    assert tr.shape == (4 * n, 32, 32, 3) and tr.dtype == np.uint8
    # training = batches 1..4 in file order
    np.testing.assert_array_equal(tr[:, 0, 0, 0], np.repeat([1, 2, 3, 4], n))
    np.testing.assert_array_equal(tr[:, 0, 0, 1].astype(int) + 256 * tr[:, 0, 0, 2].astype(int), np.tile(np.arange(n), 4))
    np.testing.assert_array_equal(ds.train.labels, np.tile(np.arange(n) % 10, 4))
    # evaluation sets: the first eval_size of data_batch_1 / data_batch_5 / test_batch
    for split, bid in ((ds.train_eval, 1), (ds.validation, 5), (ds.test, 6)):
        assert len(split) == eval_size
        np.testing.assert_array_equal(split.images[:, 0, 0, 0], bid)
        np.testing.assert_array_equal(split.images[:, 0, 0, 1], np.arange(eval_size))
        np.testing.assert_array_equal(split.labels, np.arange(eval_size) % 10)
    np.testing.assert_array_equal(tr[0, 5, 7], [11, 22, 33])  # HWC restored from CHW planar


def test_official_archive_split_and_layout(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_archive(path, n=30)
    ds = ip.load_cifar10_archive(path, eval_size=24)
    assert ds.name == "cifar10-archive" and not ds.synthetic
    check_batch_membership(ds, 30, 24)


@pytest.mark.parametrize("problem", ["missing_file", "not_a_tar", "missing_member", "truncated_pickle", "evil_pickle"])
def test_bad_archive_is_a_clear_dataset_error(tmp_path, problem):
    path = tmp_path / "cifar.tar.gz"
    if problem == "not_a_tar":
        path.write_bytes(b"this is not a tar archive at all" * 10)
    elif problem == "missing_member":
        write_archive(path, n=12, omit="data_batch_5")
    elif problem == "truncated_pickle":
        write_archive(path, n=12, corrupt="data_batch_3")
    elif problem == "evil_pickle":
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        with tarfile.open(path, "w:gz") as tar:
            payload = pickle.dumps(Evil())
            info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ip.DatasetError) as e:
        ip.load_cifar10_archive(path, eval_size=8)
    assert str(path) in str(e.value)
    assert {"missing_member": "data_batch_5", "truncated_pickle": "data_batch_3", "evil_pickle": "refusing",
            "missing_file": "not found", "not_a_tar": "not a readable"}[problem] in str(e.value)


def _mock_as_dataset(n_train, n_test, order_seed):
    import tensorflow as tf

    def as_dataset(self, split, **kwargs):
        name = str(split)
        n, prefix, offset = (n_train, "train", 0) if name.startswith("train") else (n_test, "test", 5)
        index = np.random.default_rng(order_seed).permutation(n)  # tfds stores examples hash-shuffled
        imgs = np.zeros((n, 32, 32, 3), np.uint8)
        imgs[:, 0, 0, 0] = index // 10_000 + 1 + offset
        imgs[:, 0, 0, 1] = (index % 10_000) % 256
        imgs[:, 0, 0, 2] = (index % 10_000) // 256
        labels = (index % 10_000 % 10).astype(np.int64)
        ids = np.array([f"{prefix}_{i:05d}".encode() for i in index], dtype=object)
        return tf.data.Dataset.from_tensor_slices({"id": ids, "image": imgs, "label": labels})

    return as_dataset


@pytest.fixture(scope="module")
def tfds_mocked_dataset():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(as_dataset_fn=_mock_as_dataset(50_000, 10_000, order_seed=3)):
        return ip.load_cifar10_tfds(data_dir=None, eval_size=9_984)


def test_tfds_restores_official_batch_order(tfds_mocked_dataset):
    ds = tfds_mocked_dataset
    assert ds.name == "cifar10" and not ds.synthetic
    assert len(ds.train) == 40_000 and len(ds.validation) == len(ds.test) == len(ds.train_eval) == 9_984
    tr = ds.train.images
    pos = tr[:, 0, 0, 1].astype(int) + 256 * tr[:, 0, 0, 2].astype(int)
    np.testing.assert_array_equal(tr[:, 0, 0, 0], np.repeat([1, 2, 3, 4], 10_000))  # batches 1-4
    np.testing.assert_array_equal(pos, np.tile(np.arange(10_000), 4))  # file order
    np.testing.assert_array_equal(ds.validation.images[:, 0, 0, 0], 5)  # data_batch_5
    np.testing.assert_array_equal(ds.test.images[:, 0, 0, 0], 6)
    first = ds.train_eval.images
    np.testing.assert_array_equal(first[:, 0, 0, 0], 1)  # first 9,984 of data_batch_1
    np.testing.assert_array_equal(first[:, 0, 0, 1].astype(int) + 256 * first[:, 0, 0, 2].astype(int), np.arange(9_984))
    np.testing.assert_array_equal(ds.test.labels, np.arange(9_984) % 10)


def test_tfds_random_mock_ids_and_missing_data_are_clear_errors(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):  # random ids: no batch order to recover
        with pytest.raises(ip.DatasetError, match="cannot recover the official batch-file order"):
            ip.load_cifar10_tfds()
    with pytest.raises(ip.DatasetError, match="not found by tfds"):
        ip.load_cifar10_tfds(data_dir=str(tmp_path / "empty"))


def test_normalisation_constants():
    x = np.array([[0, 0, 0], [255, 255, 255], [125.31, 122.95, 113.87]], np.float32)
    got = np.asarray(ip.normalize(x))
    np.testing.assert_allclose(got[0], -MEAN / STD, rtol=1e-6)
    np.testing.assert_allclose(got[1], (255 - MEAN) / STD, rtol=1e-6)
    np.testing.assert_allclose(got[2], 0, atol=1e-6)


def test_augmentation_only_moves_and_flips_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(24, 8, 8, 3), dtype=np.uint8)  # no zeros: padding is recognisable
    positions = np.arange(100, 124, dtype=np.int32)
    out = np.asarray(jax.jit(ip.augment)(jax.random.PRNGKey(7), positions, images))
    assert out.shape == images.shape and out.dtype == np.float32
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0))).astype(np.float32)  # zeros BEFORE normalising
    seen_offsets, flips = set(), 0
    for i in range(len(images)):
        matches = []
        for dy in range(9):
            for dx in range(9):
                crop = (padded[i, dy:dy + 8, dx:dx + 8] - MEAN) / STD
                for flip in (False, True):
                    cand = crop[:, ::-1] if flip else crop
                    if np.allclose(cand, out[i], atol=1e-5):
                        matches.append((dy, dx, flip))
        assert matches, f"example {i} is not a crop/flip of the padded image"
        seen_offsets.add(matches[0][:2])
        flips += matches[0][2]
    assert len(seen_offsets) > 5 and 0 < flips < len(images)  # really random, not fixed
    # pad value: (0 - mean)/std appears when the crop is off-centre
    assert np.isclose(out, (-MEAN / STD)[None, None, None, :], atol=1e-5).all(axis=-1).any()


def test_augmentation_depends_only_on_key_and_position():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(8, 8, 8, 3), dtype=np.uint8)
    pos = np.arange(40, 48, dtype=np.int32)
    key = jax.random.PRNGKey(3)
    augment = jax.jit(ip.augment)
    full = np.asarray(augment(key, pos, images))
    half = np.asarray(augment(key, pos[4:], images[4:]))  # same examples on "another device"
    np.testing.assert_array_equal(full[4:], half)
    other = np.asarray(augment(key, pos + 1000, images))
    assert not np.array_equal(full, other)


def test_batch_indices_are_epoch_permutations_and_resumable():
    n, b = 50, 16
    steps = [ip.batch_indices(5, s, b, n) for s in range(10)]
    stream = np.concatenate([idx for idx, _ in steps])
    np.testing.assert_array_equal(np.concatenate([p for _, p in steps]), np.arange(160))
    for e in range(3):  # each full epoch is a permutation
        np.testing.assert_array_equal(np.sort(stream[e * n:(e + 1) * n]), np.arange(n))
    assert not np.array_equal(stream[:n], stream[n:2 * n])  # reshuffled every epoch
    again, _ = ip.batch_indices(5, 7, b, n)  # a restart at step 7 gets the same batch
    np.testing.assert_array_equal(again, steps[7][0])
    assert not np.array_equal(ip.batch_indices(6, 0, b, n)[0], steps[0][0])  # seed matters


def test_synthetic_is_marked_deterministic_and_learnable_structure():
    a = ip.make_synthetic(image_size=8, train_size=64, eval_size=16, seed=1)
    b = ip.make_synthetic(image_size=8, train_size=64, eval_size=16, seed=1)
    assert a.synthetic and a.name == "synthetic" and "synthetic" in a.source
    np.testing.assert_array_equal(a.train.images, b.train.images)
    np.testing.assert_array_equal(a.train_eval.images, a.train.images[:16])
    assert a.validation.images.shape == (16, 8, 8, 3)
    # class means differ much more than within-class spread of means (learnable from colour)
    big = ip.make_synthetic(image_size=8, train_size=2000, eval_size=16, seed=1)
    means = big.train.images.reshape(2000, -1, 3).mean(1)
    centroids = np.stack([means[big.train.labels == c].mean(0) for c in range(10)])
    nearest = np.argmin(((means[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == big.train.labels).mean() > 0.5
    with pytest.raises(ip.DatasetError):
        ip.make_synthetic(image_size=8, train_size=8, eval_size=16)


def test_load_dataset_dispatch_errors(tmp_path):
    c = ml_collections.ConfigDict(dict(dataset="imagenet", eval_size=8, train_size=32, image_size=8, num_labels=10))
    with pytest.raises(ip.DatasetError, match="unknown dataset"):
        ip.load_dataset(c)
    path = tmp_path / "cifar-10-python.tar.gz"
    write_archive(path, n=12)
    c.dataset = str(path)
    with pytest.raises(ip.DatasetError, match="32x32"):
        ip.load_dataset(c)
    c.image_size, c.train_size = 32, 48
    assert len(ip.load_dataset(c).train) == 48
