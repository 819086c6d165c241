"""Make a module callable as its own main function.

The package exports ``ebpf_lab.bpftrace`` and ``ebpf_lab.doctor`` from
submodules of the same names. Python rebinds the package attribute to the
*module* whenever a submodule is imported first (``from ebpf_lab.doctor import
mechanism_status``), so each of those names is the module itself, made
callable: ``ebpf_lab.doctor()`` and ``ebpf_lab.doctor.supports(...)`` both work,
whatever was imported first.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Callable

__all__ = ["callable_module"]


def callable_module(module_name: str, fn: Callable) -> types.ModuleType:
    """Turn ``sys.modules[module_name]`` into a module that calls ``fn`` when called."""
    module = sys.modules[module_name]

    class _CallableModule(types.ModuleType):
        __doc__ = f"The module {module_name}, callable as :func:`{fn.__name__}`."

        def __call__(self, *args, **kwargs):
            return fn(*args, **kwargs)

    module.__class__ = _CallableModule
    module.__signature__ = inspect.signature(fn)
    short = module_name.rsplit(".", 1)[1]
    module.__doc__ = (module.__doc__ or "") + f"\n``{short}(...)`` is :func:`{fn.__name__}`:\n\n" \
        + inspect.cleandoc(fn.__doc__ or "")
    return module
