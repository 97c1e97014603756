"""Text that services choose, shown by drover: STATUS= in `drover status`
(table and --json) and output lines in `drover logs`.

A service may send terminal escape sequences and bytes that are not UTF-8.
The table and `drover logs` show them escaped (\\xNN for C0, DEL and
invalid bytes, \\u00NN for C1; `drover logs` keeps tabs), whether or not
stdout is a terminal; --json is valid UTF-8 whatever the service sent
(each invalid sequence becomes U+FFFD, controls \\u00NN), so it parses.
See man/drover.1 and src/lib/escape.h.
"""
import json
import os
import re
import subprocess

from conftest import DROVER, SLOW

# Sends READY=1 and STATUS=<bytes>, prints the same bytes as a line, sleeps.
SERVICE = r'''
import os, socket, sys, time
raw = bytes.fromhex(sys.argv[1])
name = os.environ["NOTIFY_SOCKET"]
addr = "\0" + name[1:] if name.startswith("@") else name
sys.stdout.buffer.write(b"line: " + raw + b"\n")
sys.stdout.flush()
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1\nSTATUS=" + raw, addr)
time.sleep(1000)
'''

# A title change, a screen clear, colour, a tab, an invalid byte, C1 CSI,
# DEL, and a sequence cut at the end of the buffer.
RAW = b"\x1b]0;pwned\x07\x1b[2J red\x1b[0m\tok \xff bad \xc2\x9b2J \x7f tail\xe2\x82"
# The table escapes the tab too; `drover logs` keeps it.
TABLE = r"\x1b]0;pwned\x07\x1b[2J red\x1b[0m\x09ok \xff bad \u009b2J \x7f tail\xe2\x82"
LOGS = r"\x1b]0;pwned\x07\x1b[2J red\x1b[0m" + "\t" + r"ok \xff bad \u009b2J \x7f tail\xe2\x82"


def drover_bytes(d, *args):
    """drover's output as bytes: what a terminal would receive."""
    cp = subprocess.run([str(DROVER), *args], capture_output=True, timeout=30 * SLOW,
                        stdin=subprocess.DEVNULL,
                        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                             "DROVER_SOCKET": str(d.sock)})
    assert cp.returncode == 0, cp
    return cp.stdout, cp.stderr


def assert_inert(out):
    """Valid UTF-8 with no control character but newline (and tab when
    allowed), no C1."""
    text = out.decode("utf-8")     # raises on an invalid byte
    bad = [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]
    assert not bad, f"raw control characters reached the output: {out!r}"
    return text


def start(droverd, tmp_path):
    (tmp_path / "svc.py").write_text(SERVICE)
    d = droverd(f"[service a]\ncommand = /usr/bin/python3 -u @DIR@/svc.py {RAW.hex()}\n"
                "ready = notify\n")
    st = d.wait_state("a", "ready")
    return d, st["pids"][0]


def test_status_table_shows_status_escaped(droverd, tmp_path):
    d, pid = start(droverd, tmp_path)
    out, err = drover_bytes(d, "status")
    assert err == b""
    text = assert_inert(out)
    assert "\t" not in text, out
    row = text.splitlines()[1]
    # (CPU, MEM, TASKS columns where droverd tracks cgroups)
    assert re.fullmatch(rf"a +daemon +ready +{pid} +\S+ +0 +(?:\S+ +){{0,3}}" + re.escape(TABLE), row), row


def test_status_json_is_valid_and_carries_the_text(droverd, tmp_path):
    d, pid = start(droverd, tmp_path)
    out, err = drover_bytes(d, "status", "--json")
    assert err == b""
    assert_inert(out.replace(b"\t", b" "))
    rec = json.loads(out)[0]
    # Controls arrive as themselves; each invalid sequence as U+FFFD, the
    # way Python decodes with errors="replace".
    assert rec["status"] == RAW.decode("utf-8", "replace"), rec
    assert rec["pids"] == [pid]
    assert b"\\u001b]0;pwned\\u0007\\u001b[2J red\\u001b[0m\\tok \\ufffd bad \\u009b2J \\u007f " \
           b"tail\\ufffd" in out, out


def test_logs_show_output_escaped(droverd, tmp_path):
    d, pid = start(droverd, tmp_path)
    d.wait_log(r"pwned")
    out, err = drover_bytes(d, "logs", "a")
    assert err == b""
    lines = assert_inert(out).splitlines()
    assert len(lines) == 1, lines
    m = re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}} a\[{pid}\]: line: (.*)", lines[0])
    assert m and m.group(1) == LOGS, lines[0]


def test_droverd_message_quoting_an_argument_is_escaped(droverd, tmp_path):
    """droverd's refusal quotes the name it was given: drover shows it
    escaped."""
    d, _ = start(droverd, tmp_path)
    cp = subprocess.run([str(DROVER), "status", "x\x1b[2J\x1b]0;t\x07"], capture_output=True,
                        timeout=30 * SLOW, stdin=subprocess.DEVNULL,
                        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                             "DROVER_SOCKET": str(d.sock)})
    assert (cp.returncode, cp.stdout) == (1, b""), cp
    assert cp.stderr == b'drover: unknown service "x\\x1b[2J\\x1b]0;t\\x07"\n', cp


def test_droverds_own_log_shows_inherited_output_escaped(droverd, tmp_path):
    """log = inherit: a service's line shares droverd's log (a terminal, a
    journal): it arrives escaped, as `drover logs` shows it."""
    d, pid = start(droverd, tmp_path)
    d.wait_log(r"pwned")
    raw = d.logfile.read_bytes()
    line = [x for x in raw.split(b"\n") if x.startswith(f"a[{pid}]: line: ".encode())]
    assert len(line) == 1, raw
    assert_inert(line[0] + b"\n")
    assert line[0].decode() == f"a[{pid}]: line: " + LOGS, line
