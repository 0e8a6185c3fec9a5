"""`make screenshots` draws the tabs with desktop.screenshots.render: one tab, into a temporary folder."""
from __future__ import annotations

from PySide6.QtGui import QImage

from desktop.screenshots import SIZE, file_name, render


def test_render_draws_one_tab_of_a_real_window_at_1200_by_800(window, run, tmp_path):
    paths = run(render(window, tmp_path / "shots", ["Network"], settle_s=0.05))
    assert paths == [tmp_path / "shots" / "network.png"]
    image = QImage(str(paths[0]))
    assert (image.width(), image.height()) == SIZE
    colors = {image.pixel(x, y) for x in range(0, image.width(), 9) for y in range(0, image.height(), 9)}
    assert len(colors) > 10, "a real picture, not a blank"
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Network"


def test_the_file_is_named_after_the_tab():
    assert file_name("Training") == "training.png"
    assert file_name("&Trust") == "trust.png"
    assert file_name("Node log") == "node-log.png"
