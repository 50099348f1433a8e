"""Loaders for users' data, tested on small files generated here, and the shipped ORL faces."""
import io
import pickle

import numpy as np
import pytest
from PIL import Image

from cryptoface_exporters.data import (_area_matrix, all_pairs, load_image, load_image_folder, load_orl, orl_split,
                                       preprocess, read_insightface_bin, read_lfw_pairs)


def _face(seed: int, shape=(40, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_orl_faces_ship_with_the_repo():
    images, labels = load_orl()
    assert images.shape == (350, 112, 92) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == list(range(35)) and np.all(np.bincount(labels) == 10)


def test_split_is_by_identity():
    _, labels = load_orl()
    split = orl_split()
    train, test = split.masks(labels)
    assert not (train & test).any() and (train | test).all()
    assert set(labels[train]).isdisjoint(set(labels[test])) and len(set(labels[test])) == 10


def test_area_resampling_is_exact_on_blocks():
    assert np.allclose(_area_matrix(92, 32).sum(1), 1.0)
    block = np.kron(np.arange(16.0).reshape(4, 4), np.ones((3, 3)))  # 12x12 of 3x3 blocks
    assert np.allclose(_area_matrix(12, 4) @ block @ _area_matrix(12, 4).T, np.arange(16.0).reshape(4, 4))


def test_preprocess_crop_resize_normalize():
    img = np.zeros((112, 92), np.uint8)
    img[10:102, :] = 255  # the center square is all white, the rest black
    out = preprocess(img, 32)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    assert np.allclose(out, 1.0)  # (255/255 - 0.5)/0.5
    rgb = np.zeros((20, 20, 3), np.uint8)
    assert np.allclose(preprocess(rgb, 8), -1.0)
    assert np.allclose(preprocess(np.full((20, 20, 3), 255, np.uint8), 8), 1.0, atol=1e-6)


def test_image_folder(tmp_path):
    for person in ("bob", "alice"):
        (tmp_path / person).mkdir()
        for k in range(3):
            Image.fromarray(_face(hash((person, k)) % 1000)).save(tmp_path / person / f"{k}.png")
    (tmp_path / "alice" / "notes.txt").write_text("not an image")
    paths, labels, names = load_image_folder(tmp_path)
    assert names == ["alice", "bob"] and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(load_image(paths[4]), _face(hash(("bob", 1)) % 1000))


def test_image_folder_empty(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path)


def test_lfw_pairs(tmp_path):
    for name in ("Ann_A", "Ben_B"):
        (tmp_path / name).mkdir()
        for k in (1, 2):
            Image.fromarray(_face(k)).save(tmp_path / name / f"{name}_{k:04d}.jpg")
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("1\t2\nAnn_A\t1\t2\nAnn_A\t1\tBen_B\t2\n")
    pairs = read_lfw_pairs(pairs_file, tmp_path)
    assert [p.same for p in pairs] == [True, False]
    assert pairs[1].right == tmp_path / "Ben_B" / "Ben_B_0002.jpg" and pairs[1].right.is_file()
    assert load_image(pairs[0].left).shape == (40, 30)
    pairs_file.write_text("Ann_A\t1\n")  # malformed line that is not the header
    pairs_file.write_text("1\t2\nAnn_A 1 2 3 4\n")
    with pytest.raises(ValueError, match="pairs.txt:2"):
        read_lfw_pairs(pairs_file, tmp_path)


def test_insightface_bin(tmp_path):
    faces = [np.stack([_face(k, (16, 16))] * 3, -1) for k in range(4)]
    encoded = []
    for k, face in enumerate(faces):
        buf = io.BytesIO()
        Image.fromarray(face).save(buf, format="PNG" if k % 2 else "JPEG", quality=95)
        encoded.append(buf.getvalue())
    path = tmp_path / "lfw.bin"
    with open(path, "wb") as fh:
        pickle.dump((encoded, [True, False]), fh, protocol=4)
    images, same = read_insightface_bin(path)
    assert same.tolist() == [True, False] and len(images) == 4
    assert np.array_equal(images[1], faces[1])  # PNG is lossless
    assert np.abs(images[0].astype(int) - faces[0]).mean() < 20  # JPEG approximately
    with open(path, "wb") as fh:
        pickle.dump((encoded[:3], [True, False]), fh)
    with pytest.raises(ValueError, match="3 images for 2 pairs"):
        read_insightface_bin(path)


def test_all_pairs():
    pairs, same = all_pairs(np.array([0, 0, 1]))
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 2]] and same.tolist() == [True, False, False]
