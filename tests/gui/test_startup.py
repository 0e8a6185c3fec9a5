"""First run and unlocking: the identity is created or unlocked before the window opens."""
import nacl.pwhash
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from core.identity import Identity
from desktop.startup import FirstRunDialog, PassphraseDialog, open_node

CHEAP = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}


def never_asked(*args):
    raise AssertionError(f"the user should not have been asked ({args})")


def test_first_run_creates_the_identity_with_the_chosen_name(tmp_path, qapp):
    home = tmp_path / "home"
    asked = []

    def ask_name(default):
        asked.append(default)
        return "erin", None

    node = open_node(home, {"name": None}, None, ask_name, never_asked)
    assert asked == [""]
    assert Identity.exists(home)
    assert node.identity.name == "erin"
    assert Identity.load(home).id == node.identity.id


def test_first_run_offers_the_name_given_on_the_command_line(tmp_path, qapp):
    asked = []
    open_node(tmp_path / "home", {"name": "frank"}, None, lambda d: asked.append(d) or ("frank", None),
              never_asked)
    assert asked == ["frank"]


def test_cancelling_the_first_run_creates_nothing(tmp_path, qapp):
    home = tmp_path / "home"
    assert open_node(home, {}, None, lambda default: None, never_asked) is None
    assert not Identity.exists(home)


def test_a_wrong_passphrase_is_explained_and_asked_again(tmp_path, qapp):
    home = tmp_path / "home"
    identity = Identity.generate("grace")
    identity.save(home, b"correct horse", **CHEAP)
    errors, answers = [], [b"wrong", b"correct horse"]

    def ask_passphrase(error):
        errors.append(error)
        return answers.pop(0)

    node = open_node(home, {}, None, never_asked, ask_passphrase)
    assert node.identity.id == identity.id
    assert errors[0] == ""                      # first ask: no error yet
    assert "does not unlock" in errors[1]       # after the wrong one: why we ask again


def test_a_passphrase_given_up_front_is_used_without_asking(tmp_path, qapp):
    home = tmp_path / "home"
    Identity.generate("heidi").save(home, b"pw", **CHEAP)
    assert open_node(home, {}, b"pw", never_asked, never_asked).identity.name == "heidi"


def test_cancelling_the_passphrase_prompt_opens_nothing(tmp_path, qapp):
    home = tmp_path / "home"
    Identity.generate("ivan").save(home, b"pw", **CHEAP)
    assert open_node(home, {}, None, never_asked, lambda error: None) is None


def test_first_run_dialog_refuses_differing_passphrases(qtbot):
    dialog = FirstRunDialog("judy")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.name.text() == "judy"
    dialog.passphrase.setText("one")
    dialog.confirm.setText("two")
    create = dialog.buttons.button(QDialogButtonBox.Ok)
    assert create.text() == "Create identity"
    qtbot.mouseClick(create, Qt.LeftButton)
    assert dialog.isVisible() and dialog.error.text() == "The two passphrases differ."
    dialog.confirm.setText("one")
    with qtbot.waitSignal(dialog.accepted):
        qtbot.mouseClick(create, Qt.LeftButton)
    assert dialog.answer() == ("judy", b"one")


def test_first_run_dialog_without_a_passphrase_means_an_unprotected_key(qtbot):
    dialog = FirstRunDialog()
    qtbot.addWidget(dialog)
    dialog.name.setText("  kim  ")
    assert dialog.answer() == ("kim", None)


def test_passphrase_dialog_shows_why_it_asks_again(qtbot, tmp_path):
    dialog = PassphraseDialog(tmp_path, "That passphrase does not unlock the key.")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.error.isVisible()
    assert dialog.passphrase.echoMode() == dialog.passphrase.EchoMode.Password
