import json
from PySide6.QtWidgets import QSplitter
from tests.gui.test_layout_fit import check_every_tab, SMALL, show_tab, settle

def test_probe(window, qtbot):
    found = check_every_tab(window, qtbot, SMALL)
    p = window.training_panel
    print("cols", p.form.fields.columns, p.form.fields.width_for(2), p.form.fields.width_for(3), p.form.minimumSizeHint())
    show_tab(window, qtbot, window.tabs.indexOf(p)); settle(window, qtbot, SMALL)
    window.grab().save("/tmp/i10p/train-narrow.png")
    settle(window, qtbot, (1400, 800))
    print("cols wide", p.form.fields.columns)
    window.grab().save("/tmp/i10p/train-wide.png")
    assert not found, json.dumps(found, indent=1)
