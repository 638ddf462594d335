"""A real local AWS Lambda emulator for the tests and bench/lambda.sh: serverless 3
with serverless-offline 13 (installed by scripts/lambda-emulator.sh into the build
folder), serving the Invoke API on a free port of 127.0.0.1 and running Python
handlers with the interpreter the fmi module was built for.

What it takes care of (docs/lambda.md, "Testing locally"):
- it runs `python3` from PATH: a folder with a python3 link to our interpreter goes
  first on PATH;
- it replaces LD_LIBRARY_PATH in the functions' environment (harmless here: the
  module's libraries are found through ld.so.cache);
- it writes ~/.serverlessrc: HOME is the emulator's own folder;
- an uncaught exception kills its Python worker, and the call then returns only at
  the function's timeout ("[504] - Lambda timeout."): it runs with --reloadHandler (a
  fresh worker per call) and real timeouts (no --noTimeout), and fmi.lambda_handler
  returns errors instead of raising under it (IS_OFFLINE=true);
- it is stopped by its process group (node starts the Python workers).

As a program: `emulator.py --handlers DIR [--function NAME=module.fn[:timeout]]...
-- COMMAND...` runs COMMAND with FMI_LAMBDA_ENDPOINT set to the emulator's URL and
FMI_LAMBDA_PREFIX to the prefix of the function names, then stops the emulator.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SERVICE, STAGE = "fmitest", "dev"
PREFIX = f"{SERVICE}-{STAGE}-"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def install(build_dir):
    """scripts/lambda-emulator.sh into build_dir/lambda-emulator; the serverless CLI.
    Raises (the test fails) when npm cannot install it: never a silent skip."""
    out = subprocess.run(["bash", os.path.join(REPO, "scripts", "lambda-emulator.sh"),
                          os.path.join(build_dir, "lambda-emulator")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RuntimeError("cannot install the Lambda emulator (scripts/lambda-emulator.sh):\n"
                           + out.stderr)
    return out.stdout.strip().splitlines()[-1]


class Emulator:
    """functions: {name: {"handler": "module.fn", "timeout": s, "environment": {...}}};
    the modules are files in handler_dirs (linked into the service folder). The
    function called NAME is invoked as PREFIX + NAME."""

    def __init__(self, serverless, functions, handler_dirs, python=sys.executable, env=None):
        self.serverless = serverless
        self.functions = functions
        self.handler_dirs = handler_dirs
        self.python = python
        self.extra_env = env or {}
        self.dir = tempfile.mkdtemp(prefix="fmi-lambda-emulator-")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = os.path.join(self.dir, "serverless.log")

    def _write_service(self):
        lines = [f"service: {SERVICE}", "frameworkVersion: '3'", "provider:", "  name: aws",
                 "  runtime: python3.11", "  region: us-east-1", f"  stage: {STAGE}", "functions:"]
        for name, f in self.functions.items():
            lines += [f"  {name}:", f"    handler: {f['handler']}", f"    timeout: {f.get('timeout', 30)}"]
            if f.get("environment"):
                lines.append("    environment:")
                lines += [f"      {k}: '{v}'" for k, v in f["environment"].items()]
        lines += ["plugins:", "  - serverless-offline", "custom:", "  serverless-offline:",
                  f"    lambdaPort: {self.port}", f"    httpPort: {free_port()}",
                  f"    websocketPort: {free_port()}"]
        with open(os.path.join(self.dir, "serverless.yml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        for d in self.handler_dirs:
            for name in os.listdir(d):
                if name.endswith(".py") and not os.path.exists(os.path.join(self.dir, name)):
                    os.symlink(os.path.join(d, name), os.path.join(self.dir, name))
        bindir = os.path.join(self.dir, "bin")
        os.mkdir(bindir)
        os.symlink(self.python, os.path.join(bindir, "python3"))
        return bindir

    def start(self, wait=60):
        bindir = self._write_service()
        env = dict(os.environ)
        env.update({"PATH": bindir + os.pathsep + env.get("PATH", ""), "HOME": self.dir,
                    "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off",
                    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "PYTHONDONTWRITEBYTECODE": "1"})
        env.pop("VIRTUAL_ENV", None)  # it would put the venv's python3 first again
        env.update(self.extra_env)
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.serverless, "offline", "start", "--reloadHandler"], cwd=self.dir, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        until = time.monotonic() + wait
        while not listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > until:
                self.stop()
                raise RuntimeError(f"the Lambda emulator did not listen on {self.endpoint} within "
                                   f"{wait} s:\n{self.log()}")
            time.sleep(0.1)
        return self

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        # Workers left in the group (a handler stuck in a call) go with it.
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="build folder (the emulator is cached there)")
    ap.add_argument("--handlers", action="append", default=[], help="folder of handler modules")
    ap.add_argument("--function", action="append", default=[], help="NAME=module.fn[:timeout]")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    functions = {}
    for spec in a.function:
        name, handler = spec.split("=", 1)
        handler, _, timeout = handler.partition(":")
        functions[name] = {"handler": handler, "timeout": int(timeout or 60)}
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    with Emulator(install(a.build), functions, a.handlers, a.python) as emu:
        env = dict(os.environ, FMI_LAMBDA_ENDPOINT=emu.endpoint, FMI_LAMBDA_PREFIX=PREFIX,
                   AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                   AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
        sys.exit(subprocess.call(command, env=env))


if __name__ == "__main__":
    main()
