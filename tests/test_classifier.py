import json
import shutil

import pytest
import torch

from ganscope import classifier as clf
from ganscope.errors import GanscopeError


@pytest.fixture
def shipped_copy(tmp_path):
    source = clf.default_weights_path()
    target = tmp_path / "c.pt"
    shutil.copy(source, target)
    shutil.copy(clf.metadata_path(source), clf.metadata_path(target))
    return target


def test_shipped_classifier_record_and_accuracy(fashion_dir):
    from ganscope.data import load_split

    model = clf.load_classifier()
    assert model.meta["test_accuracy"] >= 0.92
    assert model.meta["recipe"]["version"] == clf.RECIPE_VERSION
    test = load_split("fashion-mnist", "test", fashion_dir, download=False, progress=False)
    assert model.meta["train_images_sha256"].startswith("c59f468a")
    # The recorded accuracy is the one these weights really have.
    assert clf.accuracy(model, test.images, test.labels) == pytest.approx(
        model.meta["test_accuracy"], abs=1e-4
    )


def test_outputs():
    model = clf.load_classifier()
    images = torch.rand(7, 1, 28, 28) * 2 - 1
    probs = clf.classify(model, images, batch_size=3)
    assert probs.shape == (7, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(7))
    feats = clf.features(model, images)
    assert feats.shape == (7, clf.FashionClassifier.num_features)
    both = clf.features_and_probabilities(model, images)
    torch.testing.assert_close(both[0], feats)
    torch.testing.assert_close(both[1], probs)


def test_tampered_weights_are_refused(shipped_copy):
    data = bytearray(shipped_copy.read_bytes())
    data[-100] ^= 0xFF
    shipped_copy.write_bytes(bytes(data))
    with pytest.raises(GanscopeError, match="do not match their record"):
        clf.load_classifier(shipped_copy)


def test_missing_files_and_wrong_image_size(shipped_copy, tmp_path):
    with pytest.raises(GanscopeError, match="not found"):
        clf.load_classifier(tmp_path / "none.pt")
    meta_file = clf.metadata_path(shipped_copy)
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "image_size": 32}))
    with pytest.raises(GanscopeError, match="32px"):
        clf.load_classifier(shipped_copy)
    meta_file.unlink()
    with pytest.raises(GanscopeError, match="metadata .* is missing"):
        clf.load_classifier(shipped_copy)


def test_augmentation_shifts_and_flips():
    rng = torch.Generator().manual_seed(0)
    image = torch.full((1, 1, 28, 28), -1.0)
    image[0, 0, 10, 3] = 1.0
    out = clf._augment(image.repeat(64, 1, 1, 1), max_shift=2, rng=rng)
    assert out.shape == (64, 1, 28, 28)
    rows, cols = torch.nonzero(out[:, 0] == 1.0)[:, 1], torch.nonzero(out[:, 0] == 1.0)[:, 2]
    assert set(rows.tolist()) <= set(range(8, 13))
    assert any(c >= 20 for c in cols.tolist()) and any(c <= 6 for c in cols.tolist())


def test_training_recipe_is_deterministic(tmp_path, fashion_dir):
    recipe = clf.ClassifierRecipe(epochs=1, batch_size=64)
    a = clf.train_classifier(
        tmp_path / "a.pt", recipe, data_dir=fashion_dir, progress=False, limit=256
    )
    b = clf.train_classifier(
        tmp_path / "b.pt", recipe, data_dir=fashion_dir, progress=False, limit=256
    )
    assert a["sha256"] == b["sha256"]
    assert clf.load_classifier(tmp_path / "a.pt").meta["train_limit"] == 256
