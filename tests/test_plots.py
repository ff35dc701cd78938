"""Tests of paperlib.plots: the perplexity rule against scikit-learn's constraint, embed_2d's shapes and determinism,
learning_curves' input formats (dict, DataFrame, records, several runs, NaN gaps), scatter_2d and listen."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from paperlib.core import ConfigError
from paperlib.plots import (class_colors, default_panels, embed_2d, learning_curves, listen, scatter_2d,
                            tsne_perplexity)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def blobs(n_per=10, d=6, seed=0):
    r = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per)
    return 5.0 * r.normal(size=(3, d))[y] + r.normal(size=(3 * n_per, d)), y


# ---------------------------------------------------------------- perplexity

@pytest.mark.parametrize("n, expected", [(5, 4 / 3), (10, 3.0), (100, 30.0), (1000, 30.0)])
def test_perplexity_rule(n, expected):
    p = tsne_perplexity(n)
    assert p == pytest.approx(expected) and 0 < p < n


@pytest.mark.parametrize("n", [5, 10, 100])
def test_perplexity_is_accepted_by_sklearn(n):
    from sklearn.manifold import TSNE
    X = np.random.default_rng(0).normal(size=(n, 4))
    Y = TSNE(2, perplexity=tsne_perplexity(n), init="pca", random_state=0, max_iter=250).fit_transform(X)
    assert Y.shape == (n, 2) and np.all(np.isfinite(Y))


def test_perplexity_for_1000_points_is_valid_for_sklearn():
    from sklearn.manifold import TSNE
    TSNE(2, perplexity=tsne_perplexity(1000))._check_params_vs_input(np.zeros((1000, 3)))   # raises if >= n


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True])
def test_perplexity_rejects_too_few_points(bad):
    with pytest.raises(ConfigError):
        tsne_perplexity(bad)


# ---------------------------------------------------------------- embed_2d

@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_embed_2d_shape_and_determinism(method):
    X, _ = blobs()
    a, b = embed_2d(X, method, seed=3), embed_2d(X, method, seed=3)
    assert a.shape == (len(X), 2) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_embed_2d_tsne_matches_the_notebooks_previous_call():
    "embed_2d must reproduce 21_timbre_classify's former TSNE call bit for bit (same settings, same numbers)."
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    X, _ = blobs(n_per=20, d=60)
    pre = PCA(min(50, len(X) - 1), random_state=0).fit_transform(X)
    ref = TSNE(3, perplexity=min(30.0, (len(X) - 1) / 3), init="pca", max_iter=250, random_state=0).fit_transform(pre)
    got = embed_2d(X, "tsne", seed=0, n_components=3, max_iter=250, pca_dims=50)
    np.testing.assert_array_equal(got, ref)


def test_embed_2d_pca_matches_fit_then_transform():
    from sklearn.decomposition import PCA
    X, _ = blobs()
    np.testing.assert_array_equal(embed_2d(X, "pca", seed=0), PCA(2, random_state=0).fit(X).transform(X))


def test_embed_2d_tiny_set_and_separation():
    X, y = blobs(n_per=2)                          # 6 points: perplexity 5/3
    assert embed_2d(X, "tsne").shape == (6, 2)
    Y = embed_2d(*blobs(n_per=15)[:1], "tsne")
    _, y = blobs(n_per=15)
    centres = np.stack([Y[y == k].mean(0) for k in range(3)])
    spread = max(np.linalg.norm(Y[y == k] - centres[k], axis=1).mean() for k in range(3))
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)) > 2 * spread


def test_embed_2d_umap_shape():
    pytest.importorskip("umap")
    X, _ = blobs(n_per=10)
    Y = embed_2d(X, "umap", seed=0)
    assert Y.shape == (30, 2)


def test_embed_2d_bad_input():
    X, _ = blobs()
    with pytest.raises(ConfigError): embed_2d(X, "mds")
    with pytest.raises(ConfigError): embed_2d(X[:1], "tsne")
    with pytest.raises(ConfigError): embed_2d(np.where(X > 0, np.nan, X), "pca")
    with pytest.raises(ConfigError): embed_2d(X, "tsne", perplexity=len(X))


# ---------------------------------------------------------------- learning_curves

def history(n=6):
    ep = list(range(1, n + 1))
    return {"epoch": ep, "lr": [1e-3] * n, "loss": [1.0 / e for e in ep], "rec": [0.8 / e for e in ep],
            "seconds": [0.1] * n, "val_loss": [1.2 / e for e in ep],
            "val_acc": [float(e) / n if e % 2 == 0 else float("nan") for e in ep]}


def line_data(ax):
    return {l.get_label(): (l.get_xdata(), l.get_ydata()) for l in ax.get_lines()}


def test_learning_curves_dict_default_panels():
    fig = learning_curves(history())
    assert [ax.get_title() for ax in fig.axes] == ["loss", "scores"]
    assert set(line_data(fig.axes[0])) == {"loss", "rec", "val_loss"} and set(line_data(fig.axes[1])) == {"val_acc"}
    assert fig.axes[0].get_xlabel() == "epoch"


def test_learning_curves_nan_gaps_skip_missing_points():
    fig = learning_curves(history(), panels={"acc": ["val_acc"]})
    x, y = line_data(fig.axes[0])["val_acc"]
    np.testing.assert_array_equal(x, [2, 4, 6]) and np.testing.assert_allclose(y, [1 / 3, 2 / 3, 1])


def test_learning_curves_dataframe_and_records_agree_with_dict():
    h = history()
    a = line_data(learning_curves(h).axes[0])
    b = line_data(learning_curves(pd.DataFrame(h)).axes[0])
    rows = [dict(zip(h, vals)) for vals in zip(*h.values())]
    c = line_data(learning_curves(rows).axes[0])
    for k in a:
        np.testing.assert_allclose(a[k][1], b[k][1]); np.testing.assert_allclose(a[k][1], c[k][1])


def test_learning_curves_several_runs_and_axes():
    fig, axes = plt.subplots(1, 2)
    h2 = {k: v[:4] for k, v in history().items()}
    out = learning_curves({"A": history(), "B": pd.DataFrame(h2)}, panels={"l": ["loss"], "lr": ["lr"]}, axes=axes)
    assert out is fig
    assert set(line_data(axes[0])) == {"A: loss", "B: loss"} and axes[1].get_yscale() == "log"


def test_learning_curves_step_axis_and_errors():
    h = {"step": [10, 20, 30], "loss": [3.0, 2.0, 1.0]}
    assert learning_curves(h).axes[0].get_xlabel() == "step"
    with pytest.raises(ConfigError): learning_curves(h, panels={"x": ["nope"]})
    with pytest.raises(ConfigError): learning_curves({"epoch": [1, 2], "loss": [1.0]})
    with pytest.raises(ConfigError): learning_curves(h, x="epoch")
    assert default_panels([pd.DataFrame(h)], "step") == {"loss": ["loss"]}


# ---------------------------------------------------------------- scatter_2d

def test_scatter_2d_one_collection_per_present_class_with_fixed_colours():
    Y, y = embed_2d(*blobs()[:1], "pca"), blobs()[1]
    names = ["a", "b", "c", "d"]
    fig = scatter_2d(Y, y, names=names, title="t")
    ax = fig.axes[0]
    assert len(ax.collections) == 3 and [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    cols = class_colors(4)
    for k, coll in enumerate(ax.collections):
        np.testing.assert_allclose(coll.get_facecolor()[0][:3], cols[k][:3])
    with pytest.raises(ConfigError): scatter_2d(Y, y + 5, names=names)


def test_scatter_2d_string_labels_and_3d():
    Y3 = np.random.default_rng(0).normal(size=(12, 3))
    fig = scatter_2d(Y3, np.array(["x", "y", "z"] * 4), legend=False)
    assert fig.axes[0].name == "3d" and len(fig.axes[0].collections) == 3


def test_class_colors_are_distinct_up_to_20():
    for k in (3, 10, 11, 20):
        c = class_colors(k)
        assert len(c) == k and len(set(c)) == k


# ---------------------------------------------------------------- listen

def test_listen_length_and_range():
    pytest.importorskip("IPython")
    import io, wave
    sr = 8000
    clips = [np.ones(2 * sr), 0.1 * np.sin(np.arange(sr // 2)), np.zeros(100)]     # 2 s (cut to 1.5 s), 0.5 s, 100 samples
    a = listen(clips, sr, seconds=1.5, gap=0.3)
    with wave.open(io.BytesIO(a.data)) as w:
        assert w.getframerate() == sr
        assert w.getnframes() == int(1.5 * sr) + sr // 2 + 100 + 2 * int(0.3 * sr)
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32767
    assert np.abs(x).max() == pytest.approx(0.8, abs=1e-3)
    with pytest.raises(ConfigError): listen([], sr)
