"""`make debs` installs the Debian packages the tests need, on machines with and without policy-rc.d.

Container images ship /usr/sbin/policy-rc.d; a fresh machine may not. The step
must pass the first time on both, leave an existing policy-rc.d as it was and
remove only one it made itself. dpkg, apt-get and sudo are stand-ins on PATH
that record what they were asked (nothing is installed).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

STUBS = {
    "dpkg": "#!/bin/sh\nexit 1\n",  # every package is missing
    "apt-get": ('#!/bin/sh\n'
                'if [ -e "$POLICY_RC" ]; then state=present; else state=absent; fi\n'
                'echo "apt-get $* policy=$state" >> "$APT_LOG"\n'),
    "sudo": '#!/bin/sh\nexec "$@"\n',
}


@pytest.fixture
def machine(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    policy = tmp_path / "policy-rc.d"
    log = tmp_path / "apt.log"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", POLICY_RC=str(policy),
               APT_LOG=str(log))
    return policy, log, env


def run_debs(env) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "debs",
                           f"POLICY_RC={env['POLICY_RC']}"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_a_machine_that_ships_policy_rc_d_passes_and_keeps_it(machine):
    policy, log, env = machine
    policy.write_text("#!/bin/sh\n# the image's own\nexit 101\n")
    proc = run_debs(env)
    assert proc.returncode == 0, proc.stderr
    assert policy.read_text() == "#!/bin/sh\n# the image's own\nexit 101\n"
    assert "install -y -qq" in log.read_text()


def test_a_machine_without_policy_rc_d_gets_one_during_the_install_only(machine):
    policy, log, env = machine
    proc = run_debs(env)
    assert proc.returncode == 0, proc.stderr
    installs = [line for line in log.read_text().splitlines() if " install " in line]
    assert installs and all(line.endswith("policy=present") for line in installs)
    assert not policy.exists()


def test_a_failed_install_fails_the_step_and_still_cleans_up(machine):
    policy, log, env = machine
    apt = Path(env["PATH"].split(":")[0]) / "apt-get"
    apt.write_text('#!/bin/sh\necho "E: no such package" >&2\nexit 100\n')
    proc = run_debs(env)
    assert proc.returncode != 0
    assert not policy.exists()
