"""What the benchmark scripts share: where loom is, the zoo, running a
command loudly, the machine's CPU name, a model's --data arguments."""
import os
import platform
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOM = os.path.join(ROOT, "bin", "loom")
ZOO = ["mlp", "gpt2_tiny", "llama_tiny", "resnet_small", "unet_small", "vit_tiny", "fno_small"]
# the loss each zoo model trains with (against its committed target_y)
LOSS = {m: "mse" if m in ("unet_small", "fno_small") else "ce" for m in ZOO}


def die(msg):
    print(f"bench: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def sh(cmd, env=None):
    """Runs cmd (a list) from the repository root; its stdout, or a loud failure with its output."""
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"{shlex.join(cmd)} exited {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def data_args(model):
    """The train program's --data arguments for a zoo model's committed batch and target."""
    args, d = [], os.path.join(ROOT, "models", model)
    for f in sorted(os.listdir(d)):
        if f.endswith(".npy") and not f.startswith("expected_"):
            args += ["--data", f"{f[:-4]}={os.path.join(d, f)}"]
    return args
