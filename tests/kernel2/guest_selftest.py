"""A check that always fails, run only by guest.py's ``selftest`` step inside the VM.

It proves the chain end to end: a failing check inside the guest -> pytest's
non-zero exit and junit XML written to the shared directory -> the host-side
test (tests/kernel2/test_kernel2.py::test_a_failing_check_inside_the_vm_fails_the_run)
sees the failure. Not named test_*.py, so no one collects it by accident.
"""

import os


def test_selftest_a_failing_check_fails():
    assert os.uname().release == "this is not the release", "deliberate failure inside the guest (selftest)"
