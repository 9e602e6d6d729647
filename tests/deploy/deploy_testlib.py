"""Shared pieces of the deploy tests (tests/deploy/*_test.py).

The tests check the files under deploy/ against the daemon itself: its flags come from
`prunerd serve --help`, its ports, paths, grace period and metrics from a real prunerd started
on a free loopback port. A test whose tool is missing exits with SKIP (77, ctest's
SKIP_RETURN_CODE) and says which tool; any failed check exits 1 with the reason.

Environment (set by tests/deploy/CMakeLists.txt): PRUNERD_BIN_DIR, PRUNERD_SOURCE_DIR,
PRUNERD_TEST_DATA.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77

BIN_DIR = os.environ.get("PRUNERD_BIN_DIR", "")
SOURCE_DIR = os.environ.get("PRUNERD_SOURCE_DIR", "")
TEST_DATA = os.environ.get("PRUNERD_TEST_DATA", "")
STORIES = "models/stories260K/stories260K.bin"

_failures = []


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def need_tool(name, package_hint):
    path = shutil.which(name)
    if path is None:
        skip(f"{name} is not installed ({package_hint})")
    return path


def need_yaml():
    try:
        import yaml  # noqa: F401
    except ImportError:
        skip("python3-yaml is not installed (apt-get install python3-yaml)")
    import yaml
    return yaml


def check(condition, message):
    """Records a failed check (the test goes on, so one run shows every problem)."""
    if not condition:
        _failures.append(message)
        print(f"FAIL: {message}")
    return condition


def finish(what):
    if _failures:
        print(f"{len(_failures)} check(s) failed in {what}")
        sys.exit(1)
    print(f"ok: {what}")
    sys.exit(0)


def src(*parts):
    return os.path.join(SOURCE_DIR, *parts)


def binary(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        print(f"FAIL: {path} is missing (build the prunerd and prunectl targets)")
        sys.exit(1)
    return path


def help_flags(argv):
    """{flag: {"value": bool, "repeatable": bool}} from a command's --help text."""
    out = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        print(f"FAIL: {' '.join(argv)} --help exited {out.returncode}: {out.stderr}")
        sys.exit(1)
    flags = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^  --([a-z0-9-]+)( VALUE)?", line)
        if m and m.group(1) != "help":
            flags[m.group(1)] = {"value": bool(m.group(2)), "repeatable": "[repeatable]" in line}
    if not flags:
        print(f"FAIL: no flags found in {' '.join(argv)} --help")
        sys.exit(1)
    return flags


def serve_flags():
    return help_flags([binary("prunerd"), "serve"])


def flags_in(text):
    """The --flag names in a command line (`--name`, `--name=value`, `--no-name`)."""
    return re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", text)


def unknown_flags(used, known):
    """The used flag names that the command does not have (`--no-X` counts as X for bools)."""
    bad = []
    for f in used:
        if f in known or f == "help":
            continue
        if f.startswith("no-") and f[3:] in known and not known[f[3:]]["value"]:
            continue
        bad.append(f)
    return bad


def parse_duration(text):
    """Seconds of a Go/absl duration ("1m30s", "60s", "500ms", "2h"); 'd' for days too."""
    total, pos = 0.0, 0
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)", text):
        if m.start() != pos:
            raise ValueError(f"not a duration: {text!r}")
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        if text.strip() == "0":
            return 0.0
        raise ValueError(f"not a duration: {text!r}")
    return total


def port_of(host_port):
    return int(host_port.rsplit(":", 1)[1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


class Daemon:
    """A real `prunerd serve` (or any command that execs it) on loopback, found through its
    ready file. `env`, when given, is its whole environment. stop() sends SIGTERM and returns
    (exit code, log)."""

    def __init__(self, argv, env=None, ready_file=None, work=None):
        self.work = work or tempfile.mkdtemp(prefix="prunerd-deploy-test.")
        self.ready_file = ready_file or os.path.join(self.work, "ready.json")
        self.argv = list(argv)
        if ready_file is None:
            self.argv.append(f"--ready-file={self.ready_file}")
        self.env = dict(os.environ) if env is None else dict(env)
        self.log_path = os.path.join(self.work, "daemon.log")
        self.proc = None
        self.grpc = self.http = None

    def start(self, timeout=60):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(self.ready_file) and os.path.getsize(self.ready_file) > 0:
                info = json.load(open(self.ready_file))
                self.grpc, self.http = info["grpc"], info.get("http", "")
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def read_log(self):
        self.log.flush()
        return open(self.log_path).read()

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, self.read_log()

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout=timeout), self.read_log()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(), self.read_log()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def grace_from_log(log):
    """The shutdown grace the daemon used, from its "shutting down (grace 1m)" line."""
    m = re.search(r"shutting down \(grace ([0-9a-z.]+)\)", log)
    return parse_duration(m.group(1)) if m else None


def prunectl(args, target=None, env=None, timeout=300):
    argv = [binary("prunectl")] + args
    if target is not None:
        argv += ["--target", target]
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout)


def make_tls(work):
    """A self-signed server certificate for 127.0.0.1 (openssl); (cert, key) paths."""
    need_tool("openssl", "apt-get install openssl")
    cert, key = os.path.join(work, "server.pem"), os.path.join(work, "server.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                        key, "-out", cert], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: openssl: {r.stderr}")
        sys.exit(1)
    os.chmod(key, 0o600)
    return cert, key
