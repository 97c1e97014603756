"""droverd as PID 1 of a real container (podman with runc).

Each test builds a minimal root filesystem from the build under test:
droverd, drover, a shell (dash), sleep, and the libraries they load; then
runs it with `podman --runtime runc run --rootfs DIR` the way a container
user would. What is checked is what a container runtime sees: the
container's exit status, how `podman stop` ends it, and what `podman kill
-s HUP` does.

The sandbox's limits: crun refuses this machine's hybrid cgroups, so runc is
named; raising rlimits is not permitted, so the container gets limits at or
below the caller's (--ulimit=nofile=1024:1024, nproc=4096:4096).

podman's conmon double-forks and, pytest being a child subreaper, ends up
as our child: every test removes its container and then reaps conmon, so
that it is not counted as a stray of droverd in a later test.
"""
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import BUILD, SANITIZER_PATTERNS, SLOW, children_of, reap_strays, wait_for

PODMAN = shutil.which("podman")
RUNC = shutil.which("runc") or (os.path.exists("/usr/sbin/runc") and "/usr/sbin/runc")

pytestmark = pytest.mark.skipif(
    not (PODMAN and RUNC) and os.environ.get("CI") != "true",
    reason="podman and runc are not installed (scripts/deps.sh test installs them)")

BASE = [PODMAN or "podman", "--runtime", RUNC or "runc"]
LIMITS = ["--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096"]
PROGRAMS = ["/bin/dash", "/bin/sleep", "/bin/cat"]


def libraries(path):
    """Absolute paths of the shared objects path loads (ldd's answer)."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    return sorted(set(re.findall(r"(/\S+)\s*\(0x", out)))


def build_rootfs(root, config):
    """A root filesystem with droverd, drover, a shell and their libraries."""
    for d in ("bin", "sbin", "etc/drover", "proc", "sys", "dev", "tmp", "run", "var/log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    files = [(BUILD / "droverd", "sbin/droverd"), (BUILD / "drover", "bin/drover")]
    files += [(Path(p), p.lstrip("/")) for p in PROGRAMS]
    libs = set()
    for src, _ in files:
        libs.update(libraries(src))
    for lib in libs:
        files.append((Path(lib), lib.lstrip("/")))
    for src, dst in files:
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(src), root / dst)
    os.symlink("dash", root / "bin/sh")
    (root / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    write_config(root, config)
    return root


def write_config(root, config):
    conf = root / "etc/drover/drover.conf"
    conf.write_text("[drover]\ncontrol = /run/drover.sock\n\n" + config)
    os.chmod(conf, 0o644)


def podman(*args, timeout=60, check=True):
    cp = subprocess.run([*BASE, *args], capture_output=True, text=True,
                        timeout=timeout * SLOW, stdin=subprocess.DEVNULL)
    if check and cp.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {cp.returncode}:\n{cp.stderr}")
    return cp


def reap_conmon(timeout=10):
    """Wait for podman's helpers that were re-parented to us to exit, and reap them."""
    me = os.getpid()

    def ours():
        left = []
        for p in children_of(me):
            try:
                comm = Path(f"/proc/{p}/comm").read_text().strip()
                state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if comm in ("conmon", "podman", "runc") and state != "Z":
                left.append(p)
        return left

    deadline = time.monotonic() + timeout * SLOW
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in ours():
        os.kill(p, signal.SIGKILL)
    reap_strays()


class Container:
    """One detached container running droverd as its entrypoint."""

    def __init__(self, tmp_path, config, name=None):
        self.root = build_rootfs(tmp_path / "rootfs", config)
        self.name = name or f"drover-test-{uuid.uuid4().hex[:12]}"
        self.started = False

    def run(self, *extra):
        podman("run", "-d", "--name", self.name, *LIMITS, *extra, "--rootfs", str(self.root),
               "/sbin/droverd", "-c", "/etc/drover/drover.conf")
        self.started = True
        return self

    def state(self):
        cp = podman("inspect", "--format", "{{.State.Status}}", self.name, check=False)
        return cp.stdout.strip()

    def wait_exit(self, timeout=30):
        cp = podman("wait", self.name, timeout=timeout)
        return int(cp.stdout.strip().splitlines()[-1])

    def logs(self):
        cp = podman("logs", self.name, check=False)
        return cp.stdout + cp.stderr

    def exec(self, *cmd, check=True):
        return podman("exec", self.name, *cmd, check=check)

    def drover(self, *args, check=True):
        return self.exec("/bin/drover", "-S", "/run/drover.sock", *args, check=check)

    def wait_log(self, pattern, timeout=15):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.logs()), timeout,
                        what=f"container log to match {pattern!r}\n--- log:\n{self.logs()}")

    def remove(self):
        """Remove the container; its log must hold no sanitizer report."""
        log = self.logs() if self.started else ""
        if self.started:
            podman("rm", "-f", "-t", "0", self.name, check=False)
        reap_conmon()
        if SANITIZER_PATTERNS.search(log):
            raise AssertionError(f"sanitizer report in the container's log:\n{log}")


@pytest.fixture
def container(tmp_path):
    made = []

    def make(config, name=None):
        c = Container(tmp_path, config, name)
        made.append(c)
        return c

    yield make
    failures = []
    for c in made:
        try:
            c.remove()
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        pytest.fail("\n".join(failures))


def test_critical_service_exit_status_is_the_containers(container):
    c = container("""
[service app]
command = /bin/sh -c 'echo app running; sleep 0.3; exit 7'
restart = no
critical = yes

[service side]
command = /bin/sleep 1000
""").run()
    assert c.wait_exit() == 7, c.logs()
    log = c.logs()
    assert "critical service ended" in log, log
    # The side service was stopped on the way out, not abandoned.
    assert re.search(r"side: (stopped|exited)", log) or "every process has stopped" in log, log


def test_podman_stop_stops_in_reverse_dependency_order_and_exits_0(container):
    # Each service says when it is asked to stop; db takes a moment to finish,
    # and app, which requires it, must be gone before db is asked.
    trap = "trap 'echo {n}: TERM; sleep {d}; echo {n}: done; exit 0' TERM; echo {n}: up; " \
           "while :; do sleep 0.1; done"
    c = container(f"""
[service db]
command = /bin/sh -c "{trap.format(n='db', d='0.5')}"

[service app]
command = /bin/sh -c "{trap.format(n='app', d='0.5')}"
requires = db

[service web]
command = /bin/sh -c "{trap.format(n='web', d='0')}"
requires = app
""").run()
    c.wait_log(r"web\[\d+\]: web: up")
    t0 = time.monotonic()
    podman("stop", "-t", "20", c.name, timeout=40)
    took = time.monotonic() - t0
    assert c.wait_exit() == 0, c.logs()
    log = c.logs()
    order = [m.group(1) for m in re.finditer(r"\]: (\w+): TERM", log)]
    assert order == ["web", "app", "db"], log
    # Each was done before the next was asked: reverse dependency order.
    assert log.index("app: done") < log.index("db: TERM"), log
    assert log.index("web: done") < log.index("app: TERM"), log
    # Well within podman's grace period: no SIGKILL from the runtime.
    assert took < 20 * SLOW, (took, log)


def test_orphans_and_zombies_of_any_depth_are_reaped(container):
    # spawner leaves orphans two and three levels deep, some exiting at once
    # (zombies until PID 1 reaps them), some living a little.
    c = container("""
[service spawner]
command = /bin/sh /spawner.sh
""")
    (c.root / "spawner.sh").write_text(
        "i=0\n"
        "while [ $i -lt 10 ]; do\n"
        "  (sh -c '(sleep 0.2 &); (sh -c \"(true &)\" &); exit 0' &)\n"
        "  i=$((i+1))\n"
        "done\n"
        "echo spawned\n"
        "exec sleep 1000\n")
    c.run()
    c.wait_log(r"spawned")

    def zombies_and_strays():
        out = c.exec("/bin/sh", "-c",
                     "for s in /proc/[0-9]*/stat; do cat $s 2>/dev/null; echo; done").stdout
        procs = []
        for line in out.splitlines():
            if not line.strip():
                continue
            pid, rest = line.split(" ", 1)
            comm, fields = rest.rsplit(")", 1)
            procs.append((int(pid), comm.lstrip("("), fields.split()[0]))
        return procs

    def settled():
        procs = zombies_and_strays()
        zombies = [p for p in procs if p[2] == "Z"]
        # left: droverd, the spawner's sleep, and the exec'd inspector shell
        sleeps = [p for p in procs if p[1] == "sleep"]
        return not zombies and len(sleeps) == 1 and procs

    procs = wait_for(settled, 15, what=f"every orphan reaped: {zombies_and_strays()} {c.logs()}")
    assert any(p[0] == 1 and p[1] == "droverd" for p in procs), procs
    podman("stop", "-t", "10", c.name, timeout=30)
    assert c.wait_exit() == 0, c.logs()


def test_podman_kill_hup_reloads(container):
    c = container("""
[service one]
command = /bin/sleep 1000
""").run()
    wait_for(lambda: '"one"' in c.drover("status", "--json", check=False).stdout, 15,
             what="droverd answering inside the container")
    pid_one = c.drover("status", "--json").stdout
    write_config(c.root, """
[service one]
command = /bin/sleep 1000

[service two]
command = /bin/sleep 1001
""")
    podman("kill", "-s", "HUP", c.name)
    c.wait_log(r"two: started")
    out = c.drover("status").stdout
    assert re.search(r"^two\s", out, re.M), out
    # one was not touched by the reload.
    assert re.search(r'"name":\s*"one".*?"pids":\s*\[(\d+)', pid_one, re.S).group(1) in \
        c.drover("status", "--json").stdout
    podman("stop", "-t", "10", c.name, timeout=30)
    assert c.wait_exit() == 0, c.logs()


def test_invalid_configuration_exits_1_with_the_error(container):
    c = container("""
[service bad]
comand = /bin/true
""").run()
    assert c.wait_exit() == 1
    log = c.logs()
    assert 'unknown key "comand"' in log, log


def test_containerfile_builds_an_image_that_runs_and_stops(tmp_path):
    """contrib/container/Containerfile, built on a base image imported from
    a local root filesystem (no registry is reachable here)."""
    repo = Path(__file__).resolve().parents[2]
    tag = uuid.uuid4().hex[:12]
    base, image, name = f"localhost/drover-base-{tag}", f"localhost/drover-{tag}", f"drover-img-{tag}"
    root = build_rootfs(tmp_path / "base", "")
    (root / "etc/drover/drover.conf").unlink()
    subprocess.run(["tar", "-C", str(root), "-cf", str(tmp_path / "base.tar"), "."], check=True)
    # The build context: what the Containerfile copies, laid out as in the tree.
    ctx = tmp_path / "ctx"
    (ctx / "build").mkdir(parents=True)
    (ctx / "contrib/container").mkdir(parents=True)
    shutil.copy2(BUILD / "droverd", ctx / "build/droverd")
    shutil.copy2(BUILD / "drover", ctx / "build/drover")
    for f in ("Containerfile", "drover.conf"):
        shutil.copy2(repo / "contrib/container" / f, ctx / "contrib/container" / f)
    try:
        podman("import", str(tmp_path / "base.tar"), base, timeout=120)
        podman("build", "--runtime", RUNC, "-f", "contrib/container/Containerfile",
               "--build-arg", f"BASE={base}", "-t", image, str(ctx), timeout=300)
        podman("run", "-d", "--name", name, *LIMITS, image)
        wait_for(lambda: "app: running" in podman("logs", name, check=False).stderr
                 + podman("logs", name, check=False).stdout, 15, what="app to run")
        st = podman("exec", name, "/usr/bin/drover", "status").stdout
        assert re.search(r"^app\s+daemon\s+ready", st, re.M), st
        podman("stop", "-t", "20", name, timeout=40)
        assert int(podman("wait", name).stdout.split()[-1]) == 0
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", "-f", image, base, check=False)
        reap_conmon()
