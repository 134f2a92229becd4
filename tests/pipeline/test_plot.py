"""The evaluation report's plot (flows.evaluate.benchmark.curves_figure), measured on matplotlib's Agg
renderer for real evaluations of both samples: no two text labels overlap (on the DCRouter sample two
models sit on one point: their names overlapped), the legend's box holds no plotted point, and the x
axis names the cost model's unit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import SAMPLE


@pytest.fixture(scope="module", params=["routeprofile", "dcrouter"])
def figure(request):
    import matplotlib.pyplot as plt

    from flows.evaluate.benchmark import curves_figure, run_evaluation
    from flows.importers import COST_MODELS, import_benchmark
    from flows.training import TrainParams

    fmt = request.param
    r = run_evaluation(import_benchmark(str(SAMPLE / fmt), fmt), cost_model=COST_MODELS[fmt],
                       seed=0, params=TrainParams(iterations=30, thread_count=1))
    r["format"] = fmt
    fig = curves_figure(r)
    fig.canvas.draw()
    yield fig, r
    plt.close(fig)


def _texts(fig):
    """Every text drawn: tick labels only for ticks inside the view (matplotlib keeps the others, not drawn)."""
    from matplotlib.text import Text

    (ax,) = fig.axes
    undrawn = set()
    for ticks, labels, (lo, hi) in ((ax.get_xticks(), ax.get_xticklabels(), ax.get_xlim()),
                                    (ax.get_yticks(), ax.get_yticklabels(), ax.get_ylim())):
        undrawn |= {id(t) for v, t in zip(ticks, labels) if not lo <= v <= hi}
    r = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(r)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text() and id(t) not in undrawn]


def test_no_two_text_labels_overlap(figure):
    fig, r = figure
    texts = _texts(fig)
    assert set(r["models"]) <= {t for t, _ in texts}  # every model is named
    clashes = [(a, b) for (a, ba), (b, bb) in itertools.combinations(texts, 2) if ba.overlaps(bb)]
    assert not clashes


def test_the_legend_hides_no_plotted_point(figure):
    fig, _ = figure
    (ax,) = fig.axes
    box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    points = [c.get_offsets() for c in ax.collections] + [np.column_stack(l.get_data()) for l in ax.lines
                                                          if len(np.atleast_1d(l.get_xdata())) > 1]
    shown = ax.transData.transform(np.vstack(points))
    assert len(shown) > len(fig.axes[0].collections)
    assert not any(box.contains(x, y) for x, y in shown)


def test_the_x_axis_names_the_cost_models_unit(figure):
    from flows.importers import COST_UNITS

    fig, r = figure
    label = fig.axes[0].get_xlabel()
    assert label == f"mean cost per query ({COST_UNITS[r['format']]})" and "USD" in label
