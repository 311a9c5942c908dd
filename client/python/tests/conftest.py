"""A real kvtier-store process for the tests (KVTIER_STORE_BINARY, else the build tree's)."""
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

ROOT = pathlib.Path(__file__).resolve().parents[3]


class Store:
    def __init__(self, *flags):
        binary = os.environ.get("KVTIER_STORE_BINARY", str(ROOT / "build/services/kvtier-store"))
        self.log = tempfile.NamedTemporaryFile(prefix="kvtier-store-", suffix=".log")
        self.proc = subprocess.Popen(
            [binary, "--listen=127.0.0.1:0", "--metrics_listen=", "--t1_lock=none",
             "--t1_bytes=8388608", "--t1_min_slot_bytes=8192", *flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(rb"serving on .*\(port (\d+)\)", open(self.log.name, "rb").read())
            if m:
                self.target = f"127.0.0.1:{int(m.group(1))}"
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("kvtier-store did not start: " + open(self.log.name).read())

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


