"""medhe.plots: figures drawn from results frames show what the frames hold."""

import pandas as pd
import pytest

from medhe import plots


def _comm():
    rows = []
    for group, n, mib in (("runs", 22_713_986, {"fedavg": 86.6, "medhe": 166.9}),
                          ("papersize", 66_955_010, {"fedavg": 255.4, "medhe": 356.0}),
                          ("noniid", 22_713_986, {"fedavg": 999.0})):
        for method, v in mib.items():
            for seed, d in ((42, -1.0), (43, 1.0)):  # two seeds: the bar is their mean
                rows.append({"group": group, "method": method, "seed": seed, "num_params": n,
                             "mib_up_per_client_round": v + d})
    return pd.DataFrame(rows)


def test_bytes_per_method_bars_are_means_per_model_size():
    fig = plots.bytes_per_method(_comm())
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["trials' model (22,713,986 parameters)", "paper-size update (66,955,010 parameters)"]
    heights = [[round(b.get_height(), 6) for b in c] for c in ax.containers]
    assert heights == [[86.6, 166.9], [255.4, 356.0]]  # means over seeds; the non-IID group is left out
    assert ax.get_yscale() == "log"


def test_bytes_per_method_without_trial_or_paper_rows_is_an_error():
    with pytest.raises(ValueError, match="papersize"):
        plots.bytes_per_method(_comm().query("group == 'noniid'"))
