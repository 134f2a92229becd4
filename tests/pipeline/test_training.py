"""flows.training: the CatBoost model exported as plain arrays, checked against CatBoost itself."""

from __future__ import annotations

import numpy as np
import pytest

from flows.training import check_parity, ensemble_from_catboost
from router_runtime import ArtifactParityError



def test_export_refuses_an_ensemble_that_disagrees_with_catboost():
    from catboost import CatBoostRegressor

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = x[:, 0] + rng.normal(size=300) * 0.1
    model = CatBoostRegressor(iterations=20, depth=3, verbose=0, random_seed=0, allow_writing_files=False)
    model.fit(x, y)
    ens = ensemble_from_catboost(model, ["a", "b", "c"])
    assert check_parity(ens, model, x) <= 1e-9
    first_tree = 2 ** ens["tree_depth"][0]
    ens["leaf_values"][:first_tree] = [v + 1e-6 for v in ens["leaf_values"][:first_tree]]
    with pytest.raises(ArtifactParityError, match="differ from CatBoost"):
        check_parity(ens, model, x)


# -- the length model (issue 11) -------------------------------------------------------------------
def test_the_trained_artifact_carries_a_length_model_checked_against_catboost(trained_registry):
    from router_runtime import load_artifact

    art = load_artifact(trained_registry)
    assert art.length is not None
    parity = art.manifest["parity"]["length_model"]
    assert parity["max_abs_diff"] <= 1e-9 and parity["rows"] > 0


def test_no_length_model_without_varying_token_counts(sample_table, demo_pool):
    import polars as pl

    from flows.length import MIN_LENGTH_ROWS, train_length_model
    from flows.training import TrainParams, build_pool
    from router_runtime import default_feature_spec
    from router_runtime.candidates import candidate_input_names
    from flows.features import fit_feature_spec

    pool = build_pool(sample_table, demo_pool)
    spec = fit_feature_spec(default_feature_spec(), sample_table["query"].unique())
    cand = candidate_input_names(sample_table["model"].unique().to_list(), pool)
    params = TrainParams(iterations=5, depth=2, learning_rate=0.1)
    constant = sample_table.with_columns(pl.lit(256).alias("completion_tokens"))
    assert train_length_model(constant, spec, cand, pool, params).note.startswith("completion_tokens is one constant")
    few = sample_table.head(MIN_LENGTH_ROWS - 1)
    got = train_length_model(few, spec, cand, pool, params)
    assert got.ensemble is None and f"{MIN_LENGTH_ROWS - 1} rows" in got.note
    absent = train_length_model(sample_table.drop("completion_tokens"), spec, cand, pool, params)
    assert absent.ensemble is None and absent.rows == 0


def test_the_length_model_beats_a_per_model_constant_on_held_out_queries(sample_table):
    from flows.evaluate.length import length_error

    got = length_error(sample_table, seeds=(0,), iterations=60)
    run = got["runs"][0]
    assert run["test_rows"] > 0 and run["mae_model"] < run["mae_constant"]
