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
