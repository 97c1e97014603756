"""An in-place upgrade when the disk no longer holds the configuration in
force (SPEC section 6; droverd(8), UPGRADING).

The new image takes the configuration in force from the state, never from
the disk: a configuration file made invalid, a `user =` that no longer
resolves, before the upgrade or between its check and the takeover, does
not stop it, and the fall-back to the old image (when the new one cannot
take over) works from the state alone too. A handover's new droverd reads
the disk by design: a disk broken after the check fails the handover and
the old droverd carries on.

The faults come from outside droverd: a "new binary" at droverd's path that
breaks the disk before it runs the real droverd, or hands it a truncated
copy of the state (helpers_upgrade.fall_back_binary).
"""
import os
import pwd
import re
import signal
import subprocess

import pytest

from conftest import free_port, process_exists, wait_for
from helpers_upgrade import (droverd_version, exe_inode, fall_back_binary, install, listen_inode, loads,
                             udroverd, version_pid)
from test_upgrade import CHECKS_OK, DMN, ready, script, services, unchanged, upgraded_ok, web

assert loads and udroverd       # fixtures, used by name

VERSION = droverd_version()
USER = "drover-upg-t"

# Breaks the configuration on disk after the check, before the takeover.
BREAK_DISK = CHECKS_OK + "printf 'bogus = 1\\n' >> CONF\nexec REAL \"$@\"\n"


@pytest.fixture
def user():
    """A user that exists when droverd reads its configuration, deleted
    by the test."""
    subprocess.run(["userdel", "-f", USER], capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    uid = pwd.getpwnam(USER).pw_uid
    yield uid
    subprocess.run(["userdel", "-f", USER], capture_output=True)


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


def still_supervised(d, name, n=1):
    """A killed process of the service is replaced."""
    victim = d.pids(name)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: (lambda p: len(p) == n and victim not in p)(d.pids(name)),
             what=f"the killed process of {name} to be replaced\n{d.log()}")
    return d.pids(name)


AS_USER = f"""
[service asuser]
command = /bin/sleep 1000
user = {USER}
restart_delay = 100ms
"""


def test_an_upgrade_in_place_takes_the_configuration_in_force_when_its_user_is_gone(udroverd, user):
    port = free_port()
    d = udroverd(web(port) + DMN + AS_USER)
    before = ready(d, "web", "dmn", "asuser")
    lis = listen_inode(port)
    assert uid_of(before["asuser"][1][0]) == user
    subprocess.run(["userdel", "-f", USER], check=True)
    r = d.drover("check", "-c", d.conf)
    assert r.rc == 1 and f'"{USER}" is not a user on this system' in r.err, r
    ino = install(d.exe, src=d.exe)     # the same binary, anew
    upgraded_ok(d, d.upgrade())
    unchanged(d, before, ino, port, lis)
    d.wait_log(r"upgrade: checking \S+ against the configuration in force")
    # Still supervised, with the credentials resolved when the
    # configuration was read.
    pids = still_supervised(d, "asuser")
    assert uid_of(pids[0]) == user
    # A reload reads the disk, as usual, and refuses it.
    r = d.drover("reload")
    assert r.rc == 1 and f'"{USER}" is not a user on this system' in r.err, r
    assert d.pids("asuser") == pids


def test_an_upgrade_in_place_ignores_an_invalid_configuration_on_disk(udroverd):
    port = free_port()
    conf = web(port) + DMN
    d = udroverd(conf)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    d.write_config(conf + "bogus = 1\n")
    ino = install(d.exe, src=d.exe)
    upgraded_ok(d, d.upgrade())
    unchanged(d, before, ino, port, lis)
    still_supervised(d, "dmn")


def test_a_configuration_broken_between_the_check_and_the_takeover(udroverd):
    """The new image is executed after the disk broke: it must not read it."""
    port = free_port()
    conf = web(port) + DMN
    d = udroverd(conf)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    install(d.exe, text=script(d, BREAK_DISK.replace("CONF", str(d.conf))))
    upgraded_ok(d, d.upgrade())
    assert d.conf.read_text().endswith("bogus = 1\n")
    unchanged(d, before, os.stat(d.bindir / "droverd.real").st_ino, port, lis)
    still_supervised(d, "web", 3)
    still_supervised(d, "dmn")


def test_the_fall_back_resumes_from_the_state_with_a_broken_disk(udroverd, loads, user):
    port = free_port()
    d = udroverd(web(port) + DMN + AS_USER)
    before = ready(d, "web", "dmn", "asuser")
    lis = listen_inode(port)
    load = loads(port)
    fall_back_binary(d)
    d.write_config("this is not a configuration\n")
    subprocess.run(["userdel", "-f", USER], check=True)
    r = d.upgrade()
    assert r.rc == 1 and r.out == "", r
    m = re.fullmatch(r"drover: the new binary could not take over \((state line \d+: truncated: [^)]*)\); "
                     rf"still running droverd {re.escape(VERSION)}\n", r.err)
    assert m, f"{r}\n--- log:\n{d.log()}"
    d.wait_log(r"droverd: the new image cannot take the state over: " + re.escape(m.group(1)) +
               r"; running the old one again")
    # The old image again: same pid, same services, same listener.
    assert d.running(), d.log()
    assert exe_inode(d.pid) == d.exe_ino
    assert version_pid(d.sock) == d.pid
    assert services(d) == before
    assert listen_inode(port) == lis
    load.check()
    # Every service still supervised (no load now: the test's own SIGKILL
    # would cut a connection).
    still_supervised(d, "web", 3)
    still_supervised(d, "dmn")
    assert uid_of(still_supervised(d, "asuser")[0]) == user


def test_a_handover_whose_new_droverd_finds_the_disk_broken_changes_nothing(udroverd, loads):
    port = free_port()
    conf = web(port) + DMN
    d = udroverd(conf)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port)
    install(d.exe, text=script(d, BREAK_DISK.replace("CONF", str(d.conf))))
    r = d.upgrade("--handover")
    m = re.fullmatch(rf"drover: the new droverd \(pid (\d+)\) exited with status 1 before it was ready; "
                     rf"nothing changed, this droverd \(pid {d.pid}\) carries on\n", r.err)
    assert r.rc == 1 and r.out == "" and m, f"{r}\n--- log:\n{d.log()}"
    assert not process_exists(int(m.group(1)))
    d.wait_log(r"droverd: handover: the configuration: \S+: unknown key \"bogus\" in \[service dmn\]")
    unchanged(d, before, d.exe_ino, port, lis)
    load.check()
    still_supervised(d, "dmn")
