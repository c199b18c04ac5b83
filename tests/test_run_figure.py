"""medhe.run_figure: the training notebook's figure shows the run's history, bytes summed over rounds."""

import pandas as pd
import pytest

from medhe import run_figure


def test_curves_plot_metrics_and_cumulative_measured_bytes():
    history = pd.DataFrame({"round": [2, 0, 1], "accuracy": [0.7, 0.5, 0.6], "f1_macro": [0.6, 0.4, 0.5],
                            "bytes_up_per_client": [2 * 2**20, 0.0, 2**20], "bytes_down_per_client": [2**20, 0.0, 2**20]})
    left, right = run_figure.curves(history).axes
    assert [list(line.get_ydata()) for line in left.get_lines()] == [[0.5, 0.6, 0.7], [0.4, 0.5, 0.6]]
    up, down = right.get_lines()
    assert list(up.get_ydata()) == [0.0, 1.0, 3.0] and list(down.get_ydata()) == [0.0, 1.0, 2.0]  # MiB, summed


def test_curves_refuse_a_frame_that_is_not_a_history():
    with pytest.raises(ValueError, match="bytes_up_per_client"):
        run_figure.curves(pd.DataFrame({"round": [0], "accuracy": [0.5], "f1_macro": [0.4],
                                        "bytes_down_per_client": [0.0]}))
