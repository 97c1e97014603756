"""The shortest path through droverd: start, status, stop."""


def test_daemon_starts_and_stops(droverd):
    d = droverd("""
[service sleeper]
command = sleep 1000
""")
    st = d.wait_state("sleeper", "ready")
    assert len(st["pids"]) == 1
    assert d.stop() == 0
    assert "sleeper: pid" in d.log()


def test_oneshot_then_dependent(droverd):
    d = droverd("""
[service prep]
mode = oneshot
command = /bin/sh -c 'echo prepared'

[service app]
command = sleep 1000
requires = prep
""")
    d.wait_state("app", "ready")
    assert d.state("prep") == "done"
    log = d.log()
    assert log.index("prep: finished") < log.index("app: started")
