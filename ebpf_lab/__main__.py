"""``python -m ebpf_lab`` is the ``ebpf-lab`` command (see :mod:`ebpf_lab.cli`)."""

import sys

from .cli import main

sys.exit(main())
