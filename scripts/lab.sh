#!/usr/bin/env bash
# scripts/lab.sh: start JupyterLab for ebpf-lab, listening on 127.0.0.1 only, with notebooks/
# open and a fresh access token printed. This is only the server part: `make lab` runs the
# setup first (scripts/setup.sh) and then this script.
#
#   LAB_PORT=8888   port on 127.0.0.1 (default 8888)
#   LAB_TOKEN=...   use this token instead of a freshly generated one
#
# Stop it with Ctrl-C (twice, or answer y). From another machine, reach it through an SSH
# tunnel: ssh -L 8888:127.0.0.1:8888 root@this-host
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$PWD/.venv
PORT=${LAB_PORT:-8888}

die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/jupyter" ] || die "$VENV/bin/jupyter not found. Next step: run 'make lab' (it sets everything up first) or 'make setup'."
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] \
  || die "LAB_PORT=$PORT is not a port number. Next step: LAB_PORT=8890 make lab"
"$VENV/bin/python" - "$PORT" <<'PY' || die "port $PORT on 127.0.0.1 is already in use (another JupyterLab?). Next step: stop it, or pick another port: LAB_PORT=$((PORT + 1)) make lab"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY

TOKEN=${LAB_TOKEN:-$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(24))')}
mkdir -p notebooks
HOST=$(hostname 2>/dev/null || echo this-host)

cat <<BANNER

  ebpf-lab JupyterLab (listening on 127.0.0.1 only)

    URL:    http://127.0.0.1:$PORT/lab?token=$TOKEN
    token:  $TOKEN

  From another machine, open an SSH tunnel first:  ssh -L $PORT:127.0.0.1:$PORT root@$HOST
  Probes run as root: use a machine or VM set aside for learning. Stop with Ctrl-C.

BANNER

# the token goes through the environment, not the command line (which `ps` shows to everyone)
export JUPYTER_TOKEN=$TOKEN
# notebooks run `!ebpf-lab hint 01.1`: the venv's commands come first on PATH
export PATH="$VENV/bin:$PATH"
exec "$VENV/bin/jupyter" lab \
  --ip=127.0.0.1 --port="$PORT" --ServerApp.port_retries=0 \
  --no-browser --allow-root --notebook-dir=notebooks \
  --MultiKernelManager.default_kernel_name=ebpf-lab
