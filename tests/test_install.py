"""scripts/install.sh, the README's first command (issue 26, item 1): which PyTorch build it asks for on a machine
with and without an NVIDIA GPU (a fake nvidia-smi on PATH), that it probes PyTorch's index and falls back to the
default index when it cannot be reached, and that an unreachable index costs seconds, not minutes."""
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install.sh"
TORCH = "torch>=2.4,<=2.14.1"
VISION = "torchvision>=0.19,<=0.29.1"


def fake_nvidia_smi(folder: Path, cuda: str | None) -> Path:
    """A bin folder whose nvidia-smi reports one GPU whose driver runs CUDA `cuda` (None: fails, as without a GPU)."""
    folder.mkdir(parents=True, exist_ok=True)
    smi = folder / "nvidia-smi"
    if cuda is None:
        smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA "
                       "driver.' >&2\nexit 9\n")
    else:
        smi.write_text(f"""#!/bin/sh
if [ "$1" = "-L" ]; then echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)"; exit 0; fi
echo "+-----------------------------------------------------------------------------------------+"
echo "| NVIDIA-SMI 580.95.05              Driver Version: 580.95.05      CUDA Version: {cuda}     |"
echo "+-----------------------------------------------------------------------------------------+"
""")
    smi.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def index_server(tmp_path_factory):
    """A local stand-in for PyTorch's index: answers for whl/cpu/torch/, whl/cu126/torch/ and whl/cu128/torch/."""
    root = tmp_path_factory.mktemp("index")
    for name in ("cpu", "cu126", "cu128"):
        (root / "whl" / name / "torch").mkdir(parents=True)
        (root / "whl" / name / "torch" / "index.html").write_text("<html></html>")
    # two package indexes as pip is configured with them (a mirror): one that also holds CPU builds, one without
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for name, versions in (("with-cpu", ["2.13.0%2Bcpu", "2.15.0%2Bcpu", "2.3.1%2Bcpu", "2.14.1"]),
                           ("without-cpu", ["2.14.1", "2.13.0"])):
        (root / name / "torch").mkdir(parents=True)
        links = "".join(f'<a href="torch-{v}-{tag}-{tag}-manylinux_2_28_x86_64.whl">x</a>' for v in versions)
        (root / name / "torch" / "index.html").write_text(f"<html><body>{links}</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl"
    server.shutdown()


def install(tmp_path: Path, cuda: str | None, base: str, *args: str, proc: Path | None = None,
            configured: str | None = None):
    """The script in --dry-run: (exit code, the commands it would run, what it said, seconds it took).

    pip sees only `configured` as its index (default: one that holds no CPU build of torch), not this machine's."""
    configured = configured or base.rsplit("/", 1)[0] + "/without-cpu"
    env = {**os.environ, "PATH": f"{fake_nvidia_smi(tmp_path / 'bin', cuda)}:{os.environ['PATH']}",
           "PYTHON": sys.executable, "PRUNELAB_TORCH_INDEX_BASE": base, "PRUNELAB_PROBE_SECONDS": "2",
           "PRUNELAB_NVIDIA_PROC": str(proc or tmp_path / "no-driver"), "PIP_CONFIG_FILE": os.devnull,
           "PIP_INDEX_URL": configured, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("PIP_") or k in ("PIP_CONFIG_FILE", "PIP_INDEX_URL",
                                                                            "PIP_DISABLE_PIP_VERSION_CHECK")}
    start = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--venv", "v", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    commands = [line.removeprefix("+ ") for line in done.stdout.splitlines() if line.startswith("+ ")]
    return done.returncode, commands, done.stderr, time.monotonic() - start


def pip_torch(index: str) -> str:
    return f"v/bin/pip install --index-url {index} --timeout 15 --retries 1 {TORCH} {VISION}"


def test_without_a_gpu_it_asks_for_the_cpu_build(tmp_path, index_server):
    code, commands, said, _ = install(tmp_path, None, index_server)
    assert code == 0, said
    assert commands == [f"{sys.executable} -m venv v", pip_torch(f"{index_server}/cpu"), "v/bin/pip install -e ."]
    assert f"no NVIDIA GPU found: the CPU-only PyTorch build, from {index_server}/cpu" in said


@pytest.fixture(scope="module")
def silent_server():
    """An index that takes the connection and never answers: what stalls an install for minutes without a timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # the kernel completes the handshakes; nobody ever reads or replies
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/whl"
    listener.close()


@pytest.mark.parametrize("why", ["refused at once", "connects and never answers"])
def test_an_unreachable_index_falls_back_to_the_default_within_seconds(tmp_path, silent_server, index_server, why):
    unreachable = "http://127.0.0.1:9/whl" if why == "refused at once" else silent_server
    code, commands, said, seconds = install(tmp_path, None, unreachable, "--dev",
                                            configured=index_server.rsplit("/", 1)[0] + "/without-cpu")
    assert code == 0, said
    assert commands == [f"{sys.executable} -m venv v", "v/bin/pip install -e .[dev]"], why  # no --index-url
    assert f"{unreachable}/cpu did not answer within 2 s: PyTorch from the default index instead" in said
    assert seconds < 60, (why, seconds)  # the probe's 2 s and one index query, not pip's timeouts of minutes


def test_without_a_gpu_or_pytorchs_index_it_takes_the_newest_cpu_build_the_mirror_holds(tmp_path, index_server):
    """This machine: PyTorch's CPU index is out of reach, its package mirror holds torch 2.13.0+cpu."""
    code, commands, said, seconds = install(tmp_path, None, "http://127.0.0.1:9/whl",
                                            configured=index_server.rsplit("/", 1)[0] + "/with-cpu")
    assert code == 0, said
    # 2.15.0+cpu is above the project's range and 2.3.1+cpu below it; torchvision 0.28 goes with torch 2.13
    assert commands == [f"{sys.executable} -m venv v",
                        "v/bin/pip install --timeout 15 --retries 1 torch==2.13.0+cpu torchvision==0.28.*",
                        "v/bin/pip install -e ."]
    assert "the CPU build torch 2.13.0+cpu that pip's configured indexes hold instead" in said
    assert seconds < 60


@pytest.mark.parametrize(("cuda", "index"), [("13.0", None), ("13.1", None), ("12.9", "cu128"), ("12.8", "cu128"),
                                             ("12.6", "cu126"), ("12.2", "cpu")])
def test_a_gpu_gets_the_cuda_build_its_driver_runs(tmp_path, index_server, cuda, index):
    code, commands, said, _ = install(tmp_path, cuda, index_server)
    assert code == 0, said
    torch = [] if index is None else [pip_torch(f"{index_server}/{index}")]
    assert commands == [f"{sys.executable} -m venv v", *torch, "v/bin/pip install -e ."]
    if index != "cpu":
        where = "the default index" if index is None else f"{index_server}/{index}"
        assert f"NVIDIA GPU found (driver CUDA {cuda}): a CUDA PyTorch build, from {where}" in said


def test_a_loaded_driver_without_nvidia_smi_and_the_overrides(tmp_path, index_server):
    driver = tmp_path / "version"
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05\n")
    code, commands, said, _ = install(tmp_path, None, index_server, proc=driver)
    assert code == 0 and commands[1:] == ["v/bin/pip install -e ."] and "driver CUDA unknown" in said
    assert install(tmp_path, "13.0", index_server, "--cpu")[1][1] == pip_torch(f"{index_server}/cpu")
    assert install(tmp_path, None, index_server, "--index", f"{index_server}/cu126")[1][1] == \
        pip_torch(f"{index_server}/cu126")
    code, _, said, _ = install(tmp_path, None, index_server, "--nonsense")
    assert code == 2 and "unknown option --nonsense" in said


def test_the_readme_starts_with_the_script():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    command = [line for line in first.splitlines() if line and not line.startswith("#")]
    assert command == ["bash scripts/install.sh && .venv/bin/prunelab run --preset quick --detach && .venv/bin/prunelab"], first
