#!/usr/bin/env bash
# Create or refresh the project's virtual environment and print its python.
#   scripts/bootstrap.sh            runtime dependencies
#   scripts/bootstrap.sh test       runtime + test dependencies
# torch: an importable torch (e.g. a CUDA build on a GPU server) is reused through
# --system-site-packages and never replaced; otherwise a CPU build is installed when no
# NVIDIA GPU is present, the default (CUDA) build when one is. pip's output is shown only when it
# fails (it is kept in .venv/bootstrap-pip.log).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VIRNUCPRO_VENV:-$root/.venv}"
base_python="${PYTHON:-python3}"
extras="${1:-}"
log() { echo "[bootstrap] $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  if "$base_python" -c "import torch" 2>/dev/null; then
    log "reusing the torch that $base_python already has ($("$base_python" -c 'import torch; print(torch.__version__)'))"
    "$base_python" -m venv --system-site-packages "$venv"
  else
    "$base_python" -m venv "$venv"
  fi
fi
py="$venv/bin/python"
pip=("$py" -m pip install --disable-pip-version-check -q)
pip_log="$venv/bootstrap-pip.log"

# pip's output (its warnings too) goes to $pip_log; it is shown only when pip fails.
quiet_pip() {
  local status=0
  "${pip[@]}" "$@" >"$pip_log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    log "pip install failed (exit $status); its output, also in $pip_log:"
    cat "$pip_log" >&2
    exit "$status"
  fi
}

if ! "$py" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    log "NVIDIA GPU found: installing the default (CUDA) torch build"
    quiet_pip "torch>=2.4"
  else
    log "no NVIDIA GPU: installing the CPU build of torch"
    quiet_pip --retries 0 --index-url https://download.pytorch.org/whl/cpu \
      --extra-index-url https://pypi.org/simple "torch==2.13.0"
  fi
fi

spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp="$venv/.virnucpro-installed-${extras:-runtime}"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing virnucpro-tui $spec into $venv"
  (cd "$root" && quiet_pip -e "$spec")
  echo "$want" > "$stamp"
fi
echo "$py"
