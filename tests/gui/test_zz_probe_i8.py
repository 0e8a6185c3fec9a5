import asyncio, os
from tests.gui.test_chat_files import *  # noqa
from tests.gui.test_chat_files import pair, dialogs  # noqa
from tests.gui.test_chat_tab import write
def test_probe_shot(window, pair, qtbot, tmp_path, dialogs, run):
    bob, bob_window = pair
    write(window.chat_panel, qtbot, "Here are the weights from round 12")
    src = tmp_path / "weights round 12.bin"; src.write_bytes(os.urandom(3 * MiB))
    mine = offer(window, qtbot, dialogs, src)
    src2 = tmp_path / "notes.txt"; src2.write_bytes(b"x" * 1000)
    theirs = only_card(bob_window.chat_panel, qtbot)
    dialogs["save"] = str(tmp_path / "out.bin")
    click(qtbot, theirs.accept_button)
    qtbot.waitUntil(lambda: mine.state.text() == "sent", timeout=WAIT)
    dialogs["open"] = str(src2)
    click(qtbot, window.chat_panel.conversation.file_button)
    qtbot.waitUntil(lambda: len(file_rows(bob_window.chat_panel)) == 2, timeout=WAIT)
    for w in (window, bob_window):
        w.resize(900, 600)
    run(asyncio.sleep(0.3))
    window.grab().save("/tmp/i8_alice_files.png"); bob_window.grab().save("/tmp/i8_bob_files.png")
