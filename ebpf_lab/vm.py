"""A second kernel: run commands inside Debian's stock kernel under QEMU.

This lab's own kernel lacks kprobes, fentry and LSM programs, so those parts of
the lab would never run anywhere. virtme-ng (``vng``) boots another kernel with
*this machine's* root filesystem (read-only, with writable overlays on /tmp,
/etc, /var...) under QEMU in software emulation, runs one command as root, and
powers off; its exit status is the command's. Directories passed as ``rwdirs``
are shared writable, which is how results come back to the host.

Two kernels are known by name:

- ``"stock"``: Debian's ``/boot/vmlinuz-<release>`` whose release matches the
  installed ``linux-headers-amd64`` (so bcc compiles against exactly matching
  headers inside). Installed by ``scripts/setup_vm.sh``.
- ``"override"``: a small kernel built from Debian's ``linux-source-6.1`` with
  ``CONFIG_FUNCTION_ERROR_INJECTION`` and ``CONFIG_BPF_KPROBE_OVERRIDE`` (for
  ``override()``), cached by ``scripts/kernel_override.sh`` under
  ``$EBPF_LAB_KERNEL_CACHE`` (default ``/var/cache/ebpf-lab/kernels``).

Used by the ``kernel2`` test tier (``make test-kernels``) and by
``make record-kprobes``; see docs/KERNELS.md. This module starts processes
only; it loads nothing into the kernel itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import SetupError, UsageError
from .session import ProbeRun

__all__ = [
    "Readiness",
    "VmResult",
    "boot",
    "kernel_cache",
    "kernel_image",
    "override_kernel_image",
    "readiness",
    "stock_kernel_image",
    "stock_kernel_release",
]

DEFAULT_MEMORY = "2G"
DEFAULT_TIMEOUT = 3600.0  # software emulation is slow; a whole guest suite takes minutes


def kernel_cache() -> Path:
    """Where built kernels are cached (outside the repository)."""
    return Path(os.environ.get("EBPF_LAB_KERNEL_CACHE", "/var/cache/ebpf-lab/kernels"))


def stock_kernel_release(depends: str | None = None) -> str | None:
    """The release (``uname -r``) of the stock kernel that matches ``linux-headers-amd64``.

    ``depends`` is that package's ``Depends`` field (read with ``dpkg-query``
    when not given), e.g. ``"linux-headers-6.1.0-56-amd64 (= 6.1.192-2)"`` gives
    ``"6.1.0-56-amd64"``. None when the package is not installed.
    """
    if depends is None:
        try:
            depends = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", "linux-headers-amd64"],
                                     capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
    for part in depends.split(","):
        name = part.strip().split(" ", 1)[0]
        if name.startswith("linux-headers-") and name.endswith("-amd64"):
            return name[len("linux-headers-"):]
    return None


def stock_kernel_image() -> Path | None:
    """``/boot/vmlinuz-<release>`` of the stock kernel, if installed."""
    release = stock_kernel_release()
    if release is None:
        return None
    image = Path("/boot") / f"vmlinuz-{release}"
    return image if image.is_file() else None


def override_kernel_image() -> Path | None:
    """The newest cached kernel built by ``scripts/kernel_override.sh``, if any."""
    images = sorted(kernel_cache().glob("override-*/bzImage"), key=lambda p: p.stat().st_mtime)
    return images[-1] if images else None


def kernel_image(kernel: str | os.PathLike) -> Path | None:
    """Resolve ``"stock"``, ``"override"`` or a path to an image file (None if absent)."""
    if kernel == "stock":
        return stock_kernel_image()
    if kernel == "override":
        return override_kernel_image()
    path = Path(kernel)
    return path if path.is_file() else None


def _vng() -> str | None:
    here = Path(sys.executable).parent / "vng"
    if here.exists():
        return str(here)
    return shutil.which("vng")


@dataclass(frozen=True)
class Readiness:
    """Whether this machine is *expected* to boot ``kernel``, and why (not).

    ``expected`` is decided from facts, not by trying: root, ``qemu-system-x86_64``
    on PATH, ``vng`` installed, a busybox for virtme-ng's initramfs, the kernel
    image present. When all hold, a boot that fails is a failure, never a skip.
    """

    kernel: str
    image: Path | None
    expected: bool
    missing: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        if self.expected:
            return f"can boot {self.image} under QEMU"
        return "cannot boot the {} kernel here: missing {}".format(self.kernel, "; ".join(self.missing))


def readiness(kernel: str = "stock") -> Readiness:
    """Check (without booting) whether ``kernel`` can be booted here; see :class:`Readiness`."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the guest runs as root on this machine's filesystem)")
    if shutil.which("qemu-system-x86_64") is None:
        missing.append("qemu-system-x86_64 (apt-get install qemu-system-x86; or run scripts/setup_vm.sh)")
    if _vng() is None:
        missing.append("vng (virtme-ng in .venv; run scripts/setup_vm.sh)")
    if not any(shutil.which(b) for b in ("busybox-static", "busybox.static", "busybox")):
        # virtme-ng builds the initramfs that loads a modular kernel's virtio/9p drivers from it
        missing.append("a static busybox (apt-get install busybox-static; or run scripts/setup_vm.sh)")
    image = kernel_image(kernel)
    if image is None:
        if kernel == "stock":
            missing.append("the stock kernel image /boot/vmlinuz-$(release of linux-headers-amd64) "
                           "(run scripts/setup_vm.sh)")
        elif kernel == "override":
            missing.append(f"a built override kernel under {kernel_cache()} (run make override-kernel)")
        else:
            missing.append(f"kernel image {kernel}")
    return Readiness(kernel=str(kernel), image=image, expected=not missing, missing=tuple(missing))


@dataclass
class VmResult:
    """What one boot produced: the command's exit status and the console output."""

    kernel: Path
    command: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float
    timed_out: bool = False
    rwdirs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 30) -> str:
        """The last lines of the guest's output (stdout then stderr), for error messages."""
        text = (self.stdout + "\n" + self.stderr).strip().splitlines()
        return "\n".join(text[-lines:])


def vng_argv(image: Path, command: str, *, rwdirs: Sequence[str] = (), memory: str = DEFAULT_MEMORY,
             cpus: int | None = None, vng: str = "vng") -> list[str]:
    """The ``vng`` command line that boots ``image`` and runs ``command`` as root.

    ``--disable-kvm``: QEMU with KVM hangs on this machine kind, so the guest runs in
    software emulation (a boot takes 20 s to 2 min, each BPF program seconds).
    """
    argv = [vng, "-r", str(image), "--disable-kvm", "--memory", memory, "--user", "root"]
    if cpus:
        argv += ["--cpus", str(cpus)]
    for d in rwdirs:
        argv += ["--rwdir", str(d)]
    return argv + ["--", command]


def boot(command: str, *, kernel: str | os.PathLike = "stock", rwdirs: Sequence[str | os.PathLike] = (),
         memory: str = DEFAULT_MEMORY, cpus: int | None = None, timeout: float = DEFAULT_TIMEOUT,
         echo: bool = False) -> VmResult:
    """Boot ``kernel`` under QEMU, run the shell ``command`` in it as root, power off.

    - ``kernel``: ``"stock"``, ``"override"`` or a path to a bzImage/vmlinuz.
    - ``rwdirs``: host directories the guest may write (everything else it sees
      read-only or on throw-away overlays); pass one to get results back.
    - ``timeout``: seconds for the whole boot; QEMU is killed after it and the
      result comes back with ``timed_out=True``.
    - ``echo``: also copy the guest's console to this process's stderr as it runs.

    Returns a :class:`VmResult`; raises :class:`~ebpf_lab.errors.SetupError`
    when the machine cannot boot it (see :func:`readiness`).
    """
    if not isinstance(command, str) or not command.strip():
        raise UsageError("the guest command is empty", next_step="pass a shell command such as 'uname -r'")
    ready = readiness(str(kernel) if not isinstance(kernel, str) else kernel)
    if not ready.expected:
        raise SetupError(ready.reason, cause="the second-kernel tools are not installed on this machine",
                         next_step="run scripts/setup_vm.sh (or make setup-vm) as root; see docs/KERNELS.md")
    vng = _vng()
    argv = vng_argv(ready.image, command, rwdirs=[str(d) for d in rwdirs], memory=memory, cpus=cpus, vng=vng)
    env = dict(os.environ)
    env["PATH"] = f"{Path(vng).parent}:{env.get('PATH', '/usr/bin:/bin')}"  # vng runs virtme-run by name
    started = time.monotonic()
    out: list[str] = []
    err: list[str] = []
    timed_out = False
    with ProbeRun() as run:
        proc = run.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                         env=env, cwd="/")
        import threading  # noqa: PLC0415

        def pump(stream, sink):
            for line in stream:
                sink.append(line)
                if echo:
                    sys.stderr.write(line)
                    sys.stderr.flush()

        threads = [threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, err), daemon=True)]
        for t in threads:
            t.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True  # leaving the block kills QEMU's whole process group
        if not timed_out:
            for t in threads:
                t.join(timeout=10)
    return VmResult(kernel=ready.image, command=argv, returncode=None if timed_out else proc.returncode,
                    stdout="".join(out), stderr="".join(err), elapsed=time.monotonic() - started,
                    timed_out=timed_out, rwdirs=[str(d) for d in rwdirs])
