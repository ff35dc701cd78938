"""Tests of paperlib.metrics against scikit-learn and against cases small enough to compute by hand."""
import itertools
import warnings

import numpy as np
import pytest

from paperlib.core import ConfigError
from paperlib.metrics import (AUTHORS_CODE_THRESHOLDS, PAPER_THRESHOLDS, classification_summary, cluster_accuracy,
                              clustering_scores, crr_curve, depth_metrics, hungarian_mapping, iou_per_class,
                              miou_table, plot_confusion)

skm = pytest.importorskip("sklearn.metrics")


def brute_force_accuracy(y_true, y_pred):
    "Best one-to-one cluster->class agreement by trying every assignment (classes padded with dummies)."
    classes, clusters = list(np.unique(y_true)), list(np.unique(y_pred))
    targets = classes + [None] * max(0, len(clusters) - len(classes))
    best = 0
    for perm in itertools.permutations(targets, len(clusters)):
        m = dict(zip(clusters, perm))
        best = max(best, sum(m[p] == t for t, p in zip(y_true, y_pred)))
    return best / len(y_true)


# ---------------------------------------------------------------- clustering

def test_permuted_labelling_is_perfect_and_mapping_inverts_it():
    y = np.repeat(np.arange(5), 7)
    perm = np.array([3, 0, 4, 1, 2])
    assert cluster_accuracy(y, perm[y]) == 1.0
    assert hungarian_mapping(y, perm[y]) == {int(perm[c]): c for c in range(5)}


def test_hand_made_confusions():
    # contingency (clusters x classes): c0 -> {0: 1, 1: 3}, c1 -> {0: 2}: best map c0->1, c1->0 = 5/6
    assert cluster_accuracy([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0]) == pytest.approx(5 / 6)
    # more clusters than classes: only two clusters can be matched; the third cluster's samples are errors
    assert cluster_accuracy([0, 0, 1, 1], ["a", "b", "c", "c"]) == pytest.approx(3 / 4)
    m = hungarian_mapping([0, 0, 1, 1], ["a", "b", "c", "c"])
    assert m["c"] == 1 and len(m) == 2
    # fewer clusters than classes: one cluster for three classes scores the largest class
    assert cluster_accuracy([0, 0, 0, 1, 2, 2], [7] * 6) == pytest.approx(3 / 6)


@pytest.mark.parametrize("seed", range(25))
def test_hungarian_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_clusters = rng.integers(1, 5, size=2)
    y_true = rng.integers(0, n_classes, 12)
    y_pred = rng.integers(0, n_clusters, 12)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(brute_force_accuracy(y_true, y_pred))


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [5, 0], [0, 5]], float)
    y = np.repeat(np.arange(3), 30)
    X = centres[y] + rng.normal(size=(90, 2))
    y_pred = np.where(rng.random(90) < 0.15, rng.integers(0, 4, 90), y)   # 15 % reassigned, 4 clusters
    return X, y, y_pred


def test_clustering_scores_equal_sklearn(blobs):
    X, y, y_pred = blobs
    s = clustering_scores(X, y, y_pred)
    assert s["nmi"] == pytest.approx(skm.normalized_mutual_info_score(y, y_pred))
    assert s["silhouette"] == pytest.approx(skm.silhouette_score(X, y_pred))
    assert s["dbi"] == pytest.approx(skm.davies_bouldin_score(X, y_pred))
    assert s["chi"] == pytest.approx(skm.calinski_harabasz_score(X, y_pred))
    assert s["accuracy"] == pytest.approx(brute_force_accuracy(y, y_pred))
    assert s["undefined"] == "" and s["n_clusters"] == len(np.unique(y_pred))



@pytest.mark.parametrize("seed", range(4))
def test_fast_space_scores_equal_sklearn(seed):
    "davies_bouldin / calinski_harabasz / silhouette_precomputed against scikit-learn: singletons, duplicates, K = 2."
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, pairwise_distances, silhouette_score
    from paperlib.metrics import calinski_harabasz, davies_bouldin, silhouette_precomputed
    r = np.random.default_rng(seed)
    X = r.normal(size=(40 + 10 * seed, 3 + seed)); X[5] = X[6]                   # a duplicated point
    for c in [r.integers(0, 2, len(X)), r.integers(0, 6, len(X)), np.r_[r.integers(0, 3, len(X) - 1), 7]]:   # last: a singleton
        D = pairwise_distances(X)
        assert davies_bouldin(X, c) == pytest.approx(davies_bouldin_score(X, c), rel=1e-9)
        assert calinski_harabasz(X, c) == pytest.approx(calinski_harabasz_score(X, c), rel=1e-9)
        assert silhouette_precomputed(D, c) == pytest.approx(silhouette_score(D, c, metric="precomputed"), rel=1e-9, abs=1e-12)
    same = np.zeros((6, 2)); c = np.array([0, 0, 0, 1, 1, 1])                    # no spread at all: sklearn's conventions
    assert davies_bouldin(same, c) == davies_bouldin_score(same, c) == 0.0 and calinski_harabasz(same, c) == 1.0

def test_clustering_scores_undefined_cases(blobs):
    X, y, _ = blobs
    one = clustering_scores(X, y, np.zeros(len(y), int))
    assert np.isnan(one["silhouette"]) and np.isnan(one["dbi"]) and np.isnan(one["chi"])
    assert "n_clusters" in one["undefined"] and one["accuracy"] == pytest.approx(1 / 3)
    no_truth = clustering_scores(X, None, y)
    assert np.isnan(no_truth["accuracy"]) and np.isnan(no_truth["nmi"]) and "no y_true" in no_truth["undefined"]
    no_x = clustering_scores(None, y, y)
    assert no_x["accuracy"] == 1.0 and np.isnan(no_x["silhouette"]) and "no features" in no_x["undefined"]


def test_clustering_bad_input(blobs):
    X, y, _ = blobs
    with pytest.raises(ConfigError, match="samples"):
        cluster_accuracy(y, y[:-1])
    with pytest.raises(ConfigError, match="empty"):
        cluster_accuracy([], [])
    with pytest.raises(ConfigError, match="one-dimensional"):
        cluster_accuracy(y.reshape(3, -1), y.reshape(3, -1))
    with pytest.raises(ConfigError, match="X has shape"):
        clustering_scores(X[:10], y, y)
    with pytest.raises(ConfigError, match="NaN"):
        clustering_scores(np.full_like(X, np.nan), y, y)


# ---------------------------------------------------------------- classification

def test_classification_summary_equals_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 200)
    y_hat = np.where(rng.random(200) < 0.3, rng.integers(0, 4, 200), y)
    y_hat[y_hat == 3] = 2                     # class 3 never predicted: precision 0 (zero_division=0)
    rep, cm = classification_summary(y, y_hat, labels=[0, 1, 2, 3], target_names=list("abcd"))
    p, r, f, s = skm.precision_recall_fscore_support(y, y_hat, labels=[0, 1, 2, 3], zero_division=0)
    per = rep.iloc[:4]
    np.testing.assert_allclose(per[["precision", "recall", "f1"]].to_numpy(), np.c_[p, r, f])
    np.testing.assert_array_equal(per.support, s)
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = skm.precision_recall_fscore_support(y, y_hat, average=avg, zero_division=0)
        row = rep.set_index("class").loc[f"{avg} avg"]
        assert (row.precision, row.recall, row.f1) == pytest.approx((ap, ar, af))
        assert row.support == 200
    np.testing.assert_array_equal(cm.to_numpy(), skm.confusion_matrix(y, y_hat, labels=[0, 1, 2, 3]))
    assert list(cm.index) == list("abcd") and rep.attrs["accuracy"] == pytest.approx(skm.accuracy_score(y, y_hat))


def test_classification_summary_bad_labels():
    with pytest.raises(ConfigError, match=r"not in labels"):
        classification_summary([0, 1, 2], [0, 1, 5], labels=[0, 1, 2])
    with pytest.raises(ConfigError, match="target_names"):
        classification_summary([0, 1], [0, 1], labels=[0, 1], target_names=["a"])
    with pytest.raises(ConfigError, match="distinct"):
        classification_summary([0, 1], [0, 1], labels=[0, 0, 1])


def test_plot_confusion_returns_a_figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    _, cm = classification_summary([0, 0, 1, 1], [0, 1, 1, 1])
    fig = plot_confusion(cm, normalize="true", title="t")
    assert fig.axes[0].get_title() == "t"
    plt.close(fig)
    with pytest.raises(ConfigError):
        plot_confusion(np.ones((2, 3)))
    with pytest.raises(ConfigError):
        plot_confusion(np.eye(2), normalize="rows")


# ---------------------------------------------------------------- depth

Y, P = np.array([2.0, 4.0]), np.array([1.0, 5.0])      # one image of two pixels


def test_depth_paper_variant_by_hand():
    m = depth_metrics(Y, P)
    assert m["ABS_rel"] == pytest.approx((1 / 1 + 1 / 5) / 2)          # |y - y_hat| / y_hat
    assert m["SQR_rel"] == pytest.approx((1 / 1 + 1 / 5) / 2)          # (y - y_hat)^2 / y_hat
    assert m["RMSE_lin"] == pytest.approx(1.0)
    assert m["RMSE_log"] == pytest.approx(np.sqrt((np.log(2) ** 2 + np.log(4 / 5) ** 2) / 2))
    # relative errors |y - y_hat| / y = 0.5 and 0.25: Crr_t = 0.5 for tau in {0.26..0.30}; the sum runs to t = 29
    assert m["AUC_crr"] == pytest.approx(4 * 0.5 * 0.01)
    tau, crr = crr_curve(Y, P)
    np.testing.assert_array_equal(tau, PAPER_THRESHOLDS)
    np.testing.assert_allclose(crr, np.where(tau > 0.25, 0.5, 0.0))


def test_depth_authors_code_variant_by_hand():
    a = depth_metrics(Y, P, variant="authors_code")                     # medians 3 and 3: scale 1
    assert a["ABS_rel"] == pytest.approx((1 / 2 + 1 / 4) / 2)          # divided by the ground truth
    assert a["SQR_rel"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert a["RMSE_lin"] == pytest.approx(1.0)
    # tau_k = 0.3 k / 29 > 0.25 for k = 25..29: five thresholds with Crr = 0.5, each weighted 0.1
    assert a["AUC_crr"] == pytest.approx(0.1 * 5 * 0.5)
    tau, _ = crr_curve(Y, P, variant="authors_code")
    np.testing.assert_array_equal(tau, AUTHORS_CODE_THRESHOLDS)
    # median scaling: a global scale of the prediction changes nothing
    b = depth_metrics(Y, 3.7 * P, variant="authors_code")
    assert b == pytest.approx(a)
    # clipping of the scaled prediction to [min_depth, max_depth]
    c = depth_metrics(np.array([1.0, 100.0, 100.0]), np.array([1.0, 100.0, 100.0]), variant="authors_code")
    assert c["ABS_rel"] == pytest.approx((0 + 20 / 100 + 20 / 100) / 3)


def test_perfect_prediction_auc():
    y = np.random.default_rng(3).uniform(1, 50, size=(2, 8, 8))
    # paper: Crr_0 = 0 (strict '<' at tau = 0), Crr_1..29 = 1, intervals of 0.01 -> 0.29 (not 0.30)
    assert depth_metrics(y, y)["AUC_crr"] == pytest.approx(0.29)
    assert depth_metrics(y, y, variant="authors_code")["AUC_crr"] == pytest.approx(2.9)   # 0.1 * 29
    for v in ("paper", "authors_code"):
        m = depth_metrics(y, y, variant=v)
        assert m["ABS_rel"] == m["SQR_rel"] == m["RMSE_lin"] == m["RMSE_log"] == 0.0


def test_depth_averaging_over_images():
    # image 1 = the hand case, image 2 perfect; images are (T, H, W) = (2, 1, 2)
    yt = np.array([[[2.0, 4.0]], [[1.0, 3.0]]])
    yp = np.array([[[1.0, 5.0]], [[1.0, 3.0]]])
    m = depth_metrics(yt, yp)
    assert m["n_images"] == 2
    assert m["ABS_rel"] == pytest.approx(0.6 / 2)
    assert m["RMSE_lin"] == pytest.approx(np.sqrt(1.0 / 2))            # root after the mean over images
    assert m["AUC_crr"] == pytest.approx((0.02 + 0.29) / 2)
    a = depth_metrics(yt, yp, variant="authors_code")
    assert a["RMSE_lin"] == pytest.approx((1.0 + 0.0) / 2)              # mean of per-image RMSEs


def test_depth_masking():
    yt = np.array([2.0, 4.0, 0.0, np.nan, np.inf, 3.0])
    yp = np.array([1.0, 5.0, 7.0, 7.0, 7.0, 0.0])
    m = depth_metrics(yt, yp)                       # keeps pixels 0 and 1 only (pred 0 is masked in the paper variant)
    assert m == pytest.approx({**depth_metrics(Y, P), "valid_fraction": 2 / 6})
    a = depth_metrics(yt, yp, variant="authors_code")    # pred 0 is kept there and clipped to min_depth
    assert a["valid_fraction"] == pytest.approx(3 / 6)
    with pytest.warns(UserWarning, match="skipped"):
        m2 = depth_metrics(np.stack([np.zeros((1, 2)), Y[None]]), np.stack([np.ones((1, 2)), P[None]]))
    assert m2["n_images"] == 1 and m2["ABS_rel"] == pytest.approx(0.6)


def test_depth_bad_input():
    with pytest.raises(ConfigError, match="shape"):
        depth_metrics(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ConfigError, match="empty"):
        depth_metrics([], [])
    with pytest.raises(ConfigError, match="y_true has 1 negative"):
        depth_metrics([1.0, -2.0], [1.0, 1.0])
    with pytest.raises(ConfigError, match="y_pred has 1 negative"):
        depth_metrics([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ConfigError, match="NaN or inf"):
        depth_metrics([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(ConfigError, match="no pixel"):
        depth_metrics([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ConfigError, match="variant"):
        depth_metrics(Y, P, variant="eigen")
    with pytest.raises(ConfigError, match="thresholds"):
        depth_metrics(Y, P, thresholds=[0.3, 0.1])
    with pytest.raises(ConfigError, match="median"):
        depth_metrics([1.0, 2.0, 3.0], [0.0, 0.0, 1.0], variant="authors_code")


# ---------------------------------------------------------------- segmentation

def test_iou_equals_sklearn_jaccard():
    rng = np.random.default_rng(4)
    yt = rng.integers(0, 5, size=(3, 16, 16))
    yp = np.where(rng.random(yt.shape) < 0.3, rng.integers(0, 5, yt.shape), yt)
    iou = iou_per_class(yt, yp, 5)
    ref = skm.jaccard_score(yt.ravel(), yp.ravel(), labels=range(5), average=None)
    np.testing.assert_allclose(iou, ref)
    # ignore_index: those ground-truth pixels are dropped
    yt2 = yt.copy(); yt2[:, :4] = 255
    keep = yt2.ravel() != 255
    np.testing.assert_allclose(iou_per_class(yt2, yp, 5, ignore_index=255),
                               skm.jaccard_score(yt2.ravel()[keep], yp.ravel()[keep], labels=range(5), average=None))


def test_iou_by_hand_and_absent_classes():
    yt = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    yp = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    # class 0: I = 2, U = 4; class 1: I = 3, U = 4; class 2: I = 1, U = 2; class 3: absent -> NaN
    np.testing.assert_allclose(iou_per_class(yt, yp, 4), [0.5, 0.75, 0.5, np.nan])
    # authors_code: per image (first axis), NaN where absent from that image's ground truth, mean over images
    yt3, yp3 = yt[:, None, :], yp[:, None, :]            # two images of 1 x 4 pixels
    # image 0: c0 I1 U2, c1 I2 U3; image 1: c0 I1 U2, c1 I1 U1, c2 I1 U2
    np.testing.assert_allclose(iou_per_class(yt3, yp3, 4, variant="authors_code"),
                               [0.5, (2 / 3 + 1) / 2, 0.5, np.nan], rtol=1e-9)


def test_iou_bad_input():
    with pytest.raises(ConfigError, match="outside 0..2"):
        iou_per_class([0, 1, 3], [0, 1, 2], 3)
    with pytest.raises(ConfigError, match="y_pred has labels"):
        iou_per_class([0, 1, 2], [0, 1, 7], 3)
    with pytest.raises(ConfigError, match="shape"):
        iou_per_class(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
    with pytest.raises(ConfigError, match="integer class"):
        iou_per_class([0.5, 1.0], [0.0, 1.0], 2)
    with pytest.raises(ConfigError, match="n_classes"):
        iou_per_class([0, 1], [0, 1], 0)


def test_miou_table_drops_exactly_the_classes_under_one_percent_for_every_method():
    names = ["keep_both", "drop_both", "keep_one_at_threshold", "drop_nan", "keep_one", "drop_just_under"]
    per = {"A": [0.50, 0.009, 0.0099, np.nan, 0.00, 0.0099999],
           "B": [0.70, 0.000, 0.0100, 0.000, 0.30, 0.0050]}
    t = miou_table(per, names)
    assert t.attrs["dropped"] == ["drop_both", "drop_nan", "drop_just_under"]
    assert list(t.columns) == ["Method", "AVG", "keep_both", "keep_one_at_threshold", "keep_one"]
    assert t.AVG.tolist() == pytest.approx([100 * (0.50 + 0.0099 + 0.0) / 3, 100 * (0.70 + 0.01 + 0.30) / 3])
    f = miou_table(per, names, percent=False, min_iou=0.0001)     # the paper's other reading (0.01 %) keeps more
    assert f.attrs["dropped"] == ["drop_nan"] and f.AVG[1] == pytest.approx((0.7 + 0.0 + 0.01 + 0.3 + 0.005) / 5)


def test_miou_table_bad_input():
    with pytest.raises(ConfigError, match="percentages"):
        miou_table({"A": [74.9, 3.0]}, ["road", "car"])
    with pytest.raises(ConfigError, match="2 IoU values for 3 classes"):
        miou_table({"A": [0.1, 0.2]}, ["a", "b", "c"])
    with pytest.raises(ConfigError, match="non-empty"):
        miou_table({}, ["a"])
    with pytest.raises(ConfigError, match="min_iou"):
        miou_table({"A": [0.1]}, ["a"], min_iou=1.0001)
