# deploy/jupyterhub/jupyterhub_config.py: JupyterHub for ONE learner on that learner's OWN VM.
#
# eBPF needs root on the kernel it traces, and root in a notebook is root on the machine
# (JupyterLab has a terminal). So a class gets one small VM per learner, made from the same
# image (see learner-vm.cloud-init.yaml next to this file and docs/CLASSROOM.md), and on
# each VM this hub serves exactly one account. Nothing here shares a kernel between learners.
#
#   EBPF_LAB_LEARNER   the one login allowed on this VM (a Unix account; PAM checks its password)
#   EBPF_LAB_TEACHER   optional: a second Unix account with hub admin rights (default: none)
#   EBPF_LAB_HOME      the lab's checkout (default /opt/ebpf-lab), set up with `make setup`
#   EBPF_LAB_TLS_CERT, EBPF_LAB_TLS_KEY
#                      optional: serve HTTPS on all addresses with this certificate. Without
#                      them the hub listens on 127.0.0.1 only: reach it through an SSH tunnel
#                      (ssh -L 8000:127.0.0.1:8000 learner@vm) or a TLS reverse proxy on the VM.
#   EBPF_LAB_VM_MARKER the file that marks a machine as a dedicated learner VM
#                      (default /etc/ebpf-lab/dedicated-learner-vm, written by cloud-init)
#
# Start: /opt/ebpf-lab/.venv/bin/jupyterhub -f /opt/ebpf-lab/deploy/jupyterhub/jupyterhub_config.py
# (needs `pip install jupyterhub` in that venv and `npm install -g configurable-http-proxy`).
# tests/test_classroom.py loads this file and checks the settings below.
import os
import sys

MARKER = os.environ.get("EBPF_LAB_VM_MARKER", "/etc/ebpf-lab/dedicated-learner-vm")
HOME = os.environ.get("EBPF_LAB_HOME", "/opt/ebpf-lab")
LEARNER = os.environ.get("EBPF_LAB_LEARNER", "").strip()
TEACHER = os.environ.get("EBPF_LAB_TEACHER", "").strip()
TLS_CERT = os.environ.get("EBPF_LAB_TLS_CERT", "")
TLS_KEY = os.environ.get("EBPF_LAB_TLS_KEY", "")

# --- refuse to run anywhere but a learner's own VM -----------------------------------------
# The notebook server below runs as root. On a shared machine that would hand every login a
# root shell; so the hub starts only where provisioning marked the VM as one learner's own.
if not os.path.exists(MARKER):
    sys.exit(f"ebpf-lab hub: {MARKER} does not exist, so this is not a dedicated learner VM. "
             "Likely cause: the hub was started on a shared machine or the VM was not provisioned "
             "with deploy/jupyterhub/learner-vm.cloud-init.yaml. Next step: run it on the learner's "
             "own VM, or create the marker there (never on a shared server).")
if not LEARNER:
    sys.exit("ebpf-lab hub: EBPF_LAB_LEARNER is not set. Next step: set it to the learner's Unix "
             "account name (cloud-init writes it to /etc/ebpf-lab/hub.env).")

# --- network: loopback, or TLS ------------------------------------------------------------
if TLS_CERT and TLS_KEY:
    c.JupyterHub.bind_url = "https://0.0.0.0:443"
    c.JupyterHub.ssl_cert = TLS_CERT
    c.JupyterHub.ssl_key = TLS_KEY
else:
    c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.hub_ip = "127.0.0.1"                      # the hub's API: local only
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"
c.JupyterHub.cookie_secret_file = "/var/lib/ebpf-lab-hub/jupyterhub_cookie_secret"
c.JupyterHub.db_url = "sqlite:////var/lib/ebpf-lab-hub/jupyterhub.sqlite"

# --- who may log in: the learner (and the teacher, to help) ----------------------------------
c.JupyterHub.authenticator_class = "jupyterhub.auth.PAMAuthenticator"
c.Authenticator.allowed_users = {LEARNER} | ({TEACHER} if TEACHER else set())
c.Authenticator.admin_users = {TEACHER} if TEACHER else set()
c.JupyterHub.admin_access = bool(TEACHER)              # only a named teacher may open the learner's server
c.JupyterHub.allow_named_servers = False
c.JupyterHub.shutdown_on_logout = True

# --- the notebook server: root inside this VM, the lab's notebooks, the ebpf-lab kernel -------
# SimpleLocalProcessSpawner does not switch to the login's Unix user: the server runs as the
# hub's user, root, which eBPF needs. Acceptable only because this VM belongs to one learner
# (the marker check above); JupyterHub's docs say the same about this spawner.
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = HOME
c.Spawner.cmd = [f"{HOME}/.venv/bin/jupyterhub-singleuser"]
c.Spawner.notebook_dir = f"{HOME}/notebooks"
c.Spawner.default_url = "/lab/tree/00_start_here.ipynb"
c.Spawner.args = [
    "--MultiKernelManager.default_kernel_name=ebpf-lab",  # the lab's kernel, bcc linked in
    "--ServerApp.ip=127.0.0.1",                           # only the hub's proxy reaches it
]
c.Spawner.environment = {"EBPF_LAB_HOME": HOME}
c.Spawner.http_timeout = 120                            # first start compiles the workload helper
c.Spawner.mem_limit = None
