"""ServiceProcess: a child that never says READY is stopped, and the error says where it stood."""

from __future__ import annotations

import pytest

from driftloop.local.procs import ServiceProcess


def test_a_hung_start_up_reports_the_childs_stack_and_the_machines_state(tmp_path) -> None:
    (tmp_path / "hangs.py").write_text("import time\n\ndef wait_forever():\n    time.sleep(3600)\n\nwait_forever()\n")
    proc = ServiceProcess("hangs", "hangs", {"PYTHONPATH": str(tmp_path)}, tmp_path / "hangs.log")
    with pytest.raises(RuntimeError) as err:
        proc.wait_ready(3)
    message = str(err.value)
    assert "not ready after 3s" in message and "child state" in message and "load " in message, message
    assert "wait_forever" in message, message  # faulthandler's stack dump reached the log
    assert proc.proc.poll() is not None


def test_ready_line_is_parsed(tmp_path) -> None:
    (tmp_path / "ok.py").write_text("import time\nprint('READY grpc=127.0.0.1:1 metrics=x:2', flush=True)\n"
                                    "time.sleep(3600)\n")
    proc = ServiceProcess("ok", "ok", {"PYTHONPATH": str(tmp_path)}, tmp_path / "ok.log")
    try:
        assert proc.wait_ready(10) == {"grpc": "127.0.0.1:1", "metrics": "x:2"}
    finally:
        proc.stop(5)
