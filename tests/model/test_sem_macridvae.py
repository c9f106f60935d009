"""SEM-MacridVAE: visual initialisation (Eq. 10), category supervision (Eq. 11), ablations.

Feature arrays are made in the tests (ml-100k genres plus noise, written with the package's own
storage); no extractor or network is needed here.
"""

import math

import numpy as np
import pytest
import torch

from host_syncs import epoch_syncs
from model_contract import FAST, ModelContract
from recbole_disentangle.config import Config
from recbole_disentangle.data.dataset import create_dataset
from recbole_disentangle.evaluation.protocols import data_preparation
from recbole_disentangle.data.features import save_item_features
from recbole_disentangle.errors import ConfigError, DatasetError
from recbole_disentangle.model.macridvae import MacridVAE
from recbole_disentangle.model.sem_macridvae import SEMMacridVAE
from recbole_disentangle.quick_start import build
from recbole_disentangle.trainer import get_trainer

SMALL = {**FAST, "embedding_size": 16, "kfac": 7, "weight_decay": 0.0, "text_features": "toy", "category_field": "class"}


def write_ml100k_features(folder, dataset, n_without=100, dim=40, seed=0):
    """Genre multi-hot + Gaussian noise for all ml-100k items but the last ``n_without``."""
    genres = dict(zip(dataset.item_feat["item_id"], dataset.item_feat["class"]))  # internal id -> genre ids
    rng = np.random.default_rng(seed)
    n_items = dataset.item_num - 1 - n_without
    array = rng.normal(size=(n_items, dim)).astype(np.float32)
    for row in range(n_items):
        array[row, np.asarray(genres[row + 1]) % dim] += 3.0
    tokens = [dataset.id2token(dataset.iid_field, i) for i in range(1, n_items + 1)]
    save_item_features(folder, "ml-100k", "toy", tokens, array)


@pytest.fixture(scope="module")
def make(tmp_path_factory):
    """make(model, **settings) -> (config, build(...)) on ml-100k, read once, features in a tmp folder."""
    folder = tmp_path_factory.mktemp("features")
    dataset = create_dataset(Config("BPR", "ml-100k", config_dict=FAST))
    write_ml100k_features(folder, dataset)

    def make(model, **settings):
        config = Config(model, "ml-100k", config_dict={**SMALL, "feature_dir": str(folder), **settings})
        return config, build(config, dataset)

    make.feature_dir = str(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield make


class TestSEMMacridVAEContract(ModelContract):
    model_name = "SEM-MacridVAE"
    # Category supervision and the Xavier-sized prototypes slow it: after 5 epochs test NDCG@10 is
    # 0.1222, under popularity's 0.1421; after 10, 0.1835; after 15, 0.2207 (seed 1: 0.2133).
    epochs = 15

    @pytest.fixture(scope="class", autouse=True)
    def _features(self, request, make):
        request.cls.settings = {"embedding_size": 32, "text_features": "toy", "category_field": "class",
                                "feature_dir": make.feature_dir}


def test_visual_initialisation_is_the_scaled_pca_projection_and_kmeans_centres(make):
    config, (dataset, _, _, _, model) = make("SEM-MacridVAE", category_supervision=False)
    _, (_, _, _, _, plain) = make("MacridVAE")
    d, K = config["embedding_size"], config["kfac"]
    assert model.item_embedding.shape == (dataset.item_num, d) and model.prototypes.shape == (K, d)

    from recbole_disentangle.data.multimodal import load_item_features

    features = load_item_features(dataset, "toy")
    present = features.present.numpy()
    v = features.values.numpy()[present].astype(np.float64)
    # Eq. 10 by hand: centre, covariance, top-d eigenvectors, project; then the Xavier-normal std.
    centred = v - v.mean(0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(v))
    projection = centred @ eigenvectors[:, np.argsort(eigenvalues)[::-1][:d]]
    projection *= math.sqrt(2.0 / (dataset.item_num + d)) / projection.std()
    h = model.item_embedding.detach().numpy()[present].astype(np.float64)
    signs = np.sign((h * projection).sum(0))  # an eigenvector's sign is arbitrary
    assert np.allclose(h, projection * signs, atol=1e-5)

    # Items without features keep MacridVAE's random initialisation from the same seed.
    absent = ~present
    absent[0] = True
    assert absent.sum() == 101
    assert torch.equal(model.item_embedding[torch.from_numpy(absent)], plain.item_embedding[torch.from_numpy(absent)])

    # m_k are the K-means centres of the h_i: every centre is the mean of the h nearest to it.
    m = model.prototypes.detach().numpy().astype(np.float64)
    nearest = ((h[:, None, :] - m[None]) ** 2).sum(-1).argmin(1)
    assert len(np.unique(nearest)) == K
    for k in range(K):
        assert np.allclose(m[k], h[nearest == k].mean(0), atol=1e-4)
    # Seeded: the same seed gives the same centres.
    _, again = model.semantic_initialisation(features.values, features.present, K, config["seed"])
    assert torch.equal(again, model.prototypes.detach())


def test_pca_larger_than_the_features_is_rejected(make):
    with pytest.raises(DatasetError, match="embedding_size = 64"):
        make("SEM-MacridVAE", embedding_size=64)


def test_ablation_with_both_switches_off_is_macridvae(make):
    _, (_, train_data, _, _, ours) = make(
        "SEM-MacridVAE", visual_init=False, category_supervision=False
    )
    # The same keys make the same model: SEM-MacridVAE keeps Xavier's prototype length (1.0, as
    # it was measured), MacridVAE's default is 0.1.
    _, (_, _, _, _, reference) = make("MacridVAE", prototype_init_scale=1.0)
    assert type(ours) is SEMMacridVAE and type(reference) is MacridVAE
    ours_state, ref_state = ours.state_dict(), reference.state_dict()
    assert ours_state.keys() == ref_state.keys()
    assert all(torch.equal(ours_state[k], ref_state[k]) for k in ref_state)

    batches = [batch for _, batch in zip(range(3), train_data)]
    losses = []
    for model in (ours, reference):
        torch.manual_seed(7)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        trace = []
        for batch in batches:
            optimizer.zero_grad()
            loss = model.calculate_loss(batch)
            loss.backward()
            optimizer.step()
            trace.append(loss.item())
        losses.append(trace)
    # Multi-threaded CPU sums make two MacridVAEs differ by ~1e-8 after a step too, hence the tolerance.
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours.parameters(), reference.parameters()))


def test_each_switch_changes_what_it_should(make):
    _, (_, train_data, _, _, plain) = make("MacridVAE", prototype_init_scale=1.0)  # SEM's default length
    _, (_, _, _, _, no_visual) = make("SEM-MacridVAE", visual_init=False)
    # Without visual init the initial weights are MacridVAE's; the loss gains the category term.
    assert all(torch.equal(a, b) for a, b in zip(no_visual.parameters(), plain.parameters()))
    batch = next(iter(train_data))
    plain.eval(), no_visual.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        base = plain.calculate_loss(batch)
        torch.manual_seed(0)
        supervised = no_visual.calculate_loss(batch)
    assert supervised.item() == pytest.approx(base.item() + no_visual.category_loss().item(), rel=1e-6)
    assert no_visual.category_loss().item() > 0


@pytest.fixture
def toy_categories(tmp_path, monkeypatch):
    """A hand-made data set: 7 items with genre sets; counts a=4, b=3, c=2, d=1."""
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    genres = {"i1": "a b", "i2": "a", "i3": "a c d", "i4": "b", "i5": "", "i6": "c", "i7": "a b"}
    kinds = {"i1": "x", "i2": "y", "i3": "x", "i4": "z", "i5": "", "i6": "x", "i7": "y"}  # a single-label field
    (root / "toy.item").write_text(
        "item_id:token\tgenre:token_seq\tkind:token\n" + "".join(f"{i}\t{g}\t{kinds[i]}\n" for i, g in genres.items())
    )
    items = list(genres)  # every user misses two items, so RecBole's samplers have negatives
    rows = [f"u{u}\t{i}\t{t}\n" for u in range(7) for t, i in enumerate(items) if (t - u) % 7 < 5]
    (root / "toy.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(rows))
    monkeypatch.chdir(tmp_path)

    def dataset(**settings):
        config = Config("SEM-MacridVAE", "toy", config_dict={
            **FAST, "data_path": str(tmp_path / "data"), "visual_init": False, "category_field": "genre",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "genre", "kind"]},
            "embedding_size": 3, "kfac": 3, **settings})
        train_data = data_preparation(config, create_dataset(config))[0]
        return config, train_data

    return dataset


def targets_by_item(dataset, targets):
    return {dataset.id2token(dataset.iid_field, i): targets[i].tolist() for i in range(1, dataset.item_num)}


def test_category_targets_follow_the_stated_multi_label_and_overflow_rules(toy_categories):
    _, train_data = toy_categories()
    dataset = train_data.dataset
    targets, names = SEMMacridVAE.category_targets(dataset, "genre", 3, "other")
    assert names == ["a", "b", "[other]"]  # c and d become [other]; i3's c and d collapse into one
    assert targets_by_item(dataset, targets) == {
        "i1": [0.5, 0.5, 0], "i2": [1, 0, 0], "i3": [0.5, 0, 0.5], "i4": [0, 1, 0], "i5": [0, 0, 0],
        "i6": [0, 0, 1], "i7": [0.5, 0.5, 0]}
    targets, names = SEMMacridVAE.category_targets(dataset, "genre", 3, "drop")
    assert names == ["a", "b", "c"]  # d is dropped
    assert targets_by_item(dataset, targets)["i3"] == [0.5, 0, 0.5]
    assert targets[0].sum() == 0  # padding item
    targets, names = SEMMacridVAE.category_targets(dataset, "kind", 3, "other")  # a token field: one label each
    assert names == ["x", "y", "z"]
    assert targets_by_item(dataset, targets) == {
        "i1": [1, 0, 0], "i2": [0, 1, 0], "i3": [1, 0, 0], "i4": [0, 0, 1], "i5": [0, 0, 0], "i6": [1, 0, 0], "i7": [0, 1, 0]}
    with pytest.raises(DatasetError, match="K must equal the number of categories: set --kfac=4"):
        SEMMacridVAE.category_targets(dataset, "genre", 5, "other")
    with pytest.raises(DatasetError, match="'colour' is not a loaded item field"):
        SEMMacridVAE.category_targets(dataset, "colour", 3, "other")


def test_category_loss_on_a_hand_made_case(toy_categories):
    config, train_data = toy_categories(category_overflow="drop", category_weight=0.5, tau=0.5)
    dataset = train_data.dataset
    model = SEMMacridVAE(config, train_data.dataset)
    h = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 2, 0], [3, 1, 1], [0, 0, 2], [1, 2, 0]], dtype=torch.float)
    m = torch.eye(3) * 2.0
    with torch.no_grad():
        model.item_embedding.copy_(h)
        model.prototypes.copy_(m)
    targets = model.category_target.numpy()
    cos = (h / h.norm(dim=1, keepdim=True).clamp_min(1e-8)).numpy() @ np.eye(3)
    log_p = cos / 0.5 - np.log(np.exp(cos / 0.5).sum(1, keepdims=True))
    expected = -0.5 * (targets[1:] * log_p[1:]).sum()  # item 0 (padding) and i5 have no category
    assert model.category_items.tolist() == [i for i in range(1, 8) if dataset.id2token("item_id", i) != "i5"]
    assert model.category_loss().item() == pytest.approx(expected, rel=1e-5)
    # The gradient moves h and m, the parameters of p(c_i) (Eq. 6).
    model.category_loss().backward()
    assert model.item_embedding.grad.abs().sum() > 0 and model.prototypes.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"text_features": None, "image_features": None}, "neither 'image_features' nor 'text_features'"),
        ({"category_field": None}, "category_field"),
        ({"category_weight": -1.0}, "category_weight"),
        ({"category_overflow": "merge"}, "category_overflow"),
        ({"visual_init": "yes"}, "visual_init"),
        ({"kfac": 0}, "kfac"),  # MacridVAE's own checks still apply
    ],
)
def test_invalid_settings_are_rejected_before_data_is_read(workdir, settings, message):
    with pytest.raises(ConfigError, match=message):
        Config("SEM-MacridVAE", "no-such-data", config_dict={"text_features": "t", "category_field": "class", **settings})


def test_missing_feature_file_is_a_clear_error(make):
    with pytest.raises(DatasetError, match="missing .*ml-100k.absent.npy"):
        make("SEM-MacridVAE", text_features="absent")


def test_every_macridvae_hyper_parameter_has_a_default_here_too():
    """Config layers MacridVAE.yaml under SEM-MacridVAE.yaml (the class derives from MacridVAE's):
    every key MacridVAE.yaml has is a default of SEM-MacridVAE, whose own file wins."""
    from recbole_disentangle.config import load_yaml_file, model_defaults, properties_dir

    macrid = load_yaml_file(properties_dir() / "model" / "MacridVAE.yaml")
    sem = model_defaults("SEM-MacridVAE")
    assert set(macrid) - set(sem) == set()
    own = load_yaml_file(properties_dir() / "model" / "SEM-MacridVAE.yaml")
    assert sem["embedding_size"] == own["embedding_size"] == 200 and sem["tau"] == macrid["tau"]


def test_ml_latest_small_demo_settings_load_genres_and_title_genres_tags_features(tmp_path, monkeypatch):
    """properties/demo/ml-latest-small-15-SEM-MacridVAE.yaml on a hand-made ml-latest-small dump
    (with tags.csv): the converter's tags reach the text of the feature set, the model reads the
    genres as categories (6 most frequent + [other] for K = 7) and initialises h_i from the
    features named title_genres_tags."""
    from recbole_disentangle.config import properties_dir
    from recbole_disentangle.data.convert import convert
    from recbole_disentangle.data.features.extract import item_texts

    raw = tmp_path / "raw"
    raw.mkdir()
    genres = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Horror", "Western", "Sci-Fi"]
    # Movie m has genre m % 8 and, for even m, Drama too: Drama is the most frequent, and the last
    # two of the eight share [other].
    movies = [f"{m},Movie {m} (19{m + 50}),{genres[m % 8]}{'|Drama' if m % 2 == 0 and m % 8 else ''}" for m in range(1, 21)]
    (raw / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies) + "\n")
    ratings = [f"{u},{m},4.0,{1000 * u + m}" for u in range(1, 9) for m in range(1, 21) if (m + u) % 5]
    (raw / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(ratings) + "\n")
    (raw / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,3,Mind Bending,1\n2,3,mind bending,2\n2,3,twist,3\n")
    data = tmp_path / "data"
    convert("ml-latest-small", raw, data, progress=False)

    texts = item_texts(data / "ml-latest-small", "ml-latest-small", ["movie_title", "class", "tags"])
    assert texts["3"] == "Movie 3. Thriller. mind_bending twist"
    assert texts["4"] == "Movie 4. Romance Drama"  # no tags: the empty field is left out
    rng = np.random.default_rng(0)
    save_item_features(data / "ml-latest-small", "ml-latest-small", "title_genres_tags", list(texts),
                       rng.normal(size=(len(texts), 12)).astype(np.float32))

    monkeypatch.chdir(tmp_path)
    config = Config("SEM-MacridVAE", "ml-latest-small",
                    config_file_list=[str(properties_dir() / "demo" / "ml-latest-small-15-SEM-MacridVAE.yaml")],
                    config_dict={**FAST, "data_path": str(data), "embedding_size": 4, "paper_heldout_users": 2})
    assert (config["text_features"], config["category_field"], config["kfac"]) == ("title_genres_tags", "class", 7)
    assert config["paper_min_user_interactions"] == 15 and config["eval_protocol"] == "paper"
    _, _, _, _, model = build(config)
    # Drama (10 movies), then the four genres of 3 movies, then one of the three genres of 2
    # movies (ties go by RecBole's token id); the other two share [other].
    names = model.category_names
    assert len(names) == 7 and names[0] == "Drama" and names[-1] == "[other]"
    assert set(names[1:5]) == {"Comedy", "Action", "Thriller", "Romance"} and names[5] in {"Horror", "Western", "Sci-Fi"}
    random_init = build(Config("SEM-MacridVAE", "ml-latest-small",
                               config_file_list=[str(properties_dir() / "demo" / "ml-latest-small-15-SEM-MacridVAE.yaml")],
                               config_dict={**FAST, "data_path": str(data), "embedding_size": 4, "paper_heldout_users": 2,
                                            "visual_init": False}))[-1]
    assert not torch.allclose(model.item_embedding[1:], random_init.item_embedding[1:])


def test_a_training_epoch_waits_for_the_device_only_after_its_last_step(make):
    """Category supervision and the feature initialisation add no host sync to MacridVAE's step (issue 14)."""
    config, (_, train_data, _, _, model) = make("SEM-MacridVAE")
    events = epoch_syncs(get_trainer(config, model), train_data)
    assert events and [event for event in events if event[0] != "after the last step"] == []
