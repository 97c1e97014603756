"""What a service with `user` or `group` keeps of droverd's privilege
(SPEC sections 4 and 9): nothing. Its uid, gid and supplementary groups
are exactly those asked for, and a uid other than 0 holds no capability,
whether droverd runs as root or as a plain user holding capabilities
(systemd's User= with AmbientCapabilities=). Where droverd may not set the
groups, the start fails and nothing runs. A service that names neither
runs with droverd's own credentials. And `no_new_privs`.

A probe (python, run by the service) reads its own /proc/self/status, tries
setgroups() and setuid(0), and prints one line, which lands in droverd's
log as `NAME[PID]: PROBE {...}`.
"""
import json
import os
import pwd
import re

from conftest import wait_for
from helpers_control import pubdir  # noqa: F401 - a fixture
from helpers_net import PY

# droverd as a plain user: an id with no entry, and two groups of its own.
UID, GID, GROUPS = 4321, 4321, (4400, 4401)
NOBODY = pwd.getpwnam("nobody")
NOBODY_GROUPS = sorted(set(os.getgrouplist("nobody", NOBODY.pw_gid)))
CAPS = "+setuid,+setgid,+net_bind_service"
CAP_MASK = (1 << 6) | (1 << 7) | (1 << 10)      # the same three, as /proc shows them
NONE = "0000000000000000"

PROBE = """
import json, os
st = {}
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    if k.startswith("Cap") or k in ("Uid", "Gid", "Groups", "NoNewPrivs"):
        st[k] = v.split()
for what, call in (("setgroups", lambda: os.setgroups([0])), ("setuid", lambda: os.setuid(0))):
    try:
        call()
        st[what] = "worked"
    except PermissionError:
        st[what] = "refused"
print("PROBE " + json.dumps(st), flush=True)
"""


def as_capable_user(uid=UID, gid=GID, groups=GROUPS, caps=CAPS):
    """setpriv prefix: droverd as uid/gid with these supplementary groups,
    holding caps as inheritable and ambient capabilities (what systemd's
    AmbientCapabilities= gives a User= service)."""
    prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--groups=" + ",".join(map(str, groups))]
    if caps:
        prefix += [f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    return prefix + ["--"]


def start_in(droverd, wdir, config, prefix=(), owner=None):
    """droverd with its files in wdir (which any uid can reach; the log
    stays where the harness keeps it), started through prefix."""
    d = droverd("", start=False)
    if owner:
        os.chown(wdir, *owner)
    d.dir, d.conf, d.sock = wdir, wdir / "d.conf", wdir / "d.sock"
    (wdir / "probe.py").write_text(PROBE)
    os.chmod(wdir / "probe.py", 0o644)
    d.write_config(config)
    d.start(prefix=prefix)
    return d


def probe_service(name, extra=""):
    return f"""
[service {name}]
mode = oneshot
command = {PY} @DIR@/probe.py
{extra}
"""


def probe(d, name):
    """What the probe of service name printed, once it is done."""
    d.wait_state(name, "done")
    m = wait_for(lambda: re.search(rf"(?m)^{name}\[\d+\]: PROBE (.*)$", d.log()),
                 what=f"the output of {name}'s probe\n--- log:\n{d.log()}")
    st = json.loads(m.group(1))
    st = {k: (v if k in ("setuid", "setgroups") else " ".join(v)) for k, v in st.items()}
    for k in ("Uid", "Gid"):
        st[k] = [int(x) for x in st[k].split()]
    st["Groups"] = sorted(int(x) for x in st["Groups"].split())
    return st


def assert_unprivileged(st, uid, gid, groups):
    assert st["Uid"] == [uid] * 4, st
    assert st["Gid"] == [gid] * 4, st
    assert st["Groups"] == sorted(groups), st
    for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert st[k] == NONE, (k, st)
    assert (st["setgroups"], st["setuid"]) == ("refused", "refused"), st


# --- droverd as a plain user with capabilities ------------------------------------

def test_capable_plain_user_passes_nothing_on(droverd, pubdir):  # noqa: F811
    """droverd as uid 4321, groups 4400 4401, with CAP_SETUID, CAP_SETGID
    and CAP_NET_BIND_SERVICE: the kernel drops nothing on a change from
    uid 4321 to 65534, so droverd must."""
    d = start_in(droverd, pubdir,
                 probe_service("asnobody", "user = nobody")
                 + probe_service("groupalone", "group = nogroup")
                 + probe_service("itself", f"user = {UID}\ngroup = {GID}")
                 + probe_service("plain"),
                 prefix=as_capable_user(), owner=(UID, GID))
    assert_unprivileged(probe(d, "asnobody"), NOBODY.pw_uid, NOBODY.pw_gid, NOBODY_GROUPS)
    # group alone: droverd's uid, that group, no supplementary group, and
    # (a uid other than 0) no capability either.
    assert_unprivileged(probe(d, "groupalone"), UID, 65534, [])
    # Naming droverd's own uid is asking for that user, not for droverd's
    # groups and capabilities (an id without an entry has no groups).
    assert_unprivileged(probe(d, "itself"), UID, GID, [])
    # Neither user nor group: droverd's own credentials, as asked.
    st = probe(d, "plain")
    assert st["Uid"] == [UID] * 4 and st["Gid"] == [GID] * 4, st
    assert st["Groups"] == sorted(GROUPS), st
    assert int(st["CapAmb"], 16) == CAP_MASK, st
    assert d.running()


def test_without_cap_setgid_the_start_fails(droverd, pubdir):  # noqa: F811
    """droverd may change its uid (CAP_SETUID) but not its groups, and its
    groups are not nobody's: the service must not run with droverd's
    groups. It does not run at all, says why, and droverd goes on."""
    d = start_in(droverd, pubdir,
                 probe_service("asnobody", "user = nobody\nrestart = no")
                 + "\n[service other]\ncommand = sleep 1000\n",
                 prefix=as_capable_user(gid=NOBODY.pw_gid, caps="+setuid"), owner=(UID, NOBODY.pw_gid))
    reason = ("cannot switch to uid 65534 gid 65534: droverd may not set supplementary groups "
              "(it lacks CAP_SETGID) and its own are not the ones wanted")
    st = d.wait_state("asnobody", "failed")
    assert st["reason"] == reason, st
    assert st["pids"] == []
    log = d.log()
    assert f"droverd: error: asnobody: {reason}\n" in log
    assert "PROBE" not in log
    other = d.wait_state("other", "ready")["pids"]
    assert d.drover("version").rc == 0
    assert d.pids("other") == other
    assert d.running()


def test_without_cap_setgid_the_same_groups_are_fine(droverd, pubdir):  # noqa: F811
    """droverd cannot set groups, but already has exactly nobody's: the
    service runs, and keeps none of droverd's capabilities."""
    d = start_in(droverd, pubdir, probe_service("asnobody", "user = nobody"),
                 prefix=as_capable_user(gid=NOBODY.pw_gid, groups=NOBODY_GROUPS, caps="+setuid"),
                 owner=(UID, NOBODY.pw_gid))
    assert_unprivileged(probe(d, "asnobody"), NOBODY.pw_uid, NOBODY.pw_gid, NOBODY_GROUPS)


# --- droverd as root ----------------------------------------------------------------

def test_root_user_nobody_has_no_capability(droverd, pubdir):  # noqa: F811
    d = start_in(droverd, pubdir, probe_service("asnobody", "user = nobody"),
                 prefix=["setpriv", "--groups=4400,4401", "--"])
    assert_unprivileged(probe(d, "asnobody"), NOBODY.pw_uid, NOBODY.pw_gid, NOBODY_GROUPS)


def test_root_without_setuid_fixup_user_nobody_has_no_capability(droverd, pubdir):  # noqa: F811
    """Root whose capabilities survive a uid change (SECBIT_NO_SETUID_FIXUP,
    systemd's SecureBits=no-setuid-fixup), with ambient and inheritable
    capabilities: the kernel clears nothing at setuid, droverd must."""
    d = start_in(droverd, pubdir, probe_service("asnobody", "user = nobody"),
                 prefix=["setpriv", "--securebits=+no_setuid_fixup", "--groups=4400,4401",
                         f"--inh-caps={CAPS}", f"--ambient-caps={CAPS}", "--"])
    assert_unprivileged(probe(d, "asnobody"), NOBODY.pw_uid, NOBODY.pw_gid, NOBODY_GROUPS)


# --- no_new_privs ---------------------------------------------------------------------

def nnp(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("NoNewPrivs:"):
            return line.split()[1]
    raise KeyError("NoNewPrivs")


def the_pid(d, name):
    st = d.wait_state(name, "ready")
    assert len(st["pids"]) == 1, st
    return int(st["pids"][0])


def test_no_new_privs(droverd):
    d = droverd("""
[service on]
command = sleep 1000
no_new_privs = yes
user = nobody

[service off]
command = sleep 1000
no_new_privs = no

[service default]
command = sleep 1000
""")
    assert nnp(the_pid(d, "on")) == "1"
    assert nnp(the_pid(d, "off")) == "0"
    assert nnp(the_pid(d, "default")) == "0"


def test_no_new_privs_change_replaces_the_process(droverd):
    conf = "[service a]\ncommand = sleep 1000\n{extra}\n[service other]\ncommand = sleep 999\n"
    d = droverd(conf.format(extra=""))
    old, other = the_pid(d, "a"), the_pid(d, "other")
    d.write_config(conf.format(extra="no_new_privs = yes"))
    r = d.drover("reload")
    assert (r.rc, r.out) == (0, "reloaded: 0 added, 0 removed, 1 replaced, 0 updated, 1 unchanged\n"
                                "  replaced  a\n"), r
    new = wait_for(lambda: (p := d.pids("a")) and int(p[0]) != old and int(p[0]), what="the new process")
    assert nnp(new) == "1"
    assert the_pid(d, "other") == other
