"""Runs upstream's devfile registry server and client on a registry tree, inside a private
network namespace (started by tests/it/upstream_server.rs as
`unshare -n bash -c 'ip link set lo up && exec python3 upstream_server.py PLAN'`).

PLAN is a JSON file: {"bin": folder with index-server and registry-library,
optionally "env" (the index server's environment over the defaults below) and "probes" ([port,
path] pairs asked on 127.0.0.1),
"registry": the extracted /registry tree, "sidecar_config": docker-registry config listening on
127.0.0.1:5000, "work": a scratch folder, "stacks": {stack: {"versions": {version: [its
starter projects]}, "starters": [the default version's]}}}. It starts the OCI sidecar and the index server as the devfile-index pod does, then
asks every question the test asserts on and writes the answers to WORK/results.json: it checks
nothing itself. Every process it starts is killed before it exits.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

SERVER = "http://127.0.0.1:8080"
HEALTH_DEADLINE = 60.0


def get(path):
    """(status, body as text) of GET SERVER+path; status 0 when nothing answered."""
    return get_url(SERVER + path)


def get_url(url):
    """(status, body as text) of GET url; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        return 0, str(e)


def get_digest(path):
    """(status, sha256:<hex> of the body) of GET SERVER+path; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(SERVER + path, timeout=20) as r:
            return r.status, "sha256:" + hashlib.sha256(r.read()).hexdigest()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        return 0, str(e)


def run(args, env=None):
    """Exit code and combined output of a client command (bounded in time)."""
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env, timeout=60)
        return p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return -1, "timed out after 60 s: " + str(e.output)


def main():
    plan = json.load(open(sys.argv[1]))
    work = plan["work"]
    registry = plan["registry"]
    results = {"started": False}
    children = []
    try:
        sidecar_log = open(os.path.join(work, "sidecar.log"), "wb")
        children.append(subprocess.Popen(
            ["docker-registry", "serve", plan["sidecar_config"]],
            stdin=subprocess.DEVNULL, stdout=sidecar_log, stderr=subprocess.STDOUT))
        cache = os.path.join(work, "server-cache")
        os.makedirs(cache, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "DEVFILE_STACKS": os.path.join(registry, "stacks"),
            "DEVFILE_SAMPLES": os.path.join(registry, "samples"),
            "DEVFILE_INDEX": os.path.join(registry, "index.json"),
            "DEVFILE_BASE64_INDEX": os.path.join(cache, "index_base64.json"),
            "DEVFILE_SAMPLE_INDEX": os.path.join(cache, "sample_index.json"),
            "DEVFILE_SAMPLE_BASE64_INDEX": os.path.join(cache, "sample_base64_index.json"),
            "DEVFILE_STACK_INDEX": os.path.join(cache, "stack_index.json"),
            "DEVFILE_STACK_BASE64_INDEX": os.path.join(cache, "stack_base64_index.json"),
            "REGISTRY_HEADLESS": "true",
            "REGISTRY_NAME": "airgap-test",
            "GIN_MODE": "release",
        })
        env.pop("TELEMETRY_KEY", None)
        # A rendered Deployment's env for the container, when the test runs its pod.
        env.update(plan.get("env", {}))
        server_log_path = os.path.join(work, "server.log")
        server_log = open(server_log_path, "wb")
        server = subprocess.Popen([os.path.join(plan["bin"], "index-server")], cwd=cache,
                                  env=env, stdin=subprocess.DEVNULL, stdout=server_log,
                                  stderr=subprocess.STDOUT)
        children.append(server)

        # The server pushes every stack version to the sidecar, then answers /health.
        deadline = time.monotonic() + HEALTH_DEADLINE
        while True:
            if server.poll() is not None:
                results["exit"] = server.returncode
                break
            status, body = get("/health")
            if status == 200:
                results["started"] = True
                results["health"] = body
                break
            if time.monotonic() > deadline:
                results["exit"] = "no answer on /health within %d s" % HEALTH_DEADLINE
                break
            time.sleep(0.05)
        if not results["started"]:
            return

        # The probes of a rendered Deployment: (port, path) → status.
        results["probes"] = {}
        for port, path in plan.get("probes", []):
            results["probes"]["%d%s" % (port, path)] = get_url(
                "http://127.0.0.1:%d%s" % (port, path))[0]
        results["index"] = {p: get(p) for p in ["/index", "/v2index", "/index/all"]}
        results["devfiles"] = {}
        results["starters"] = {}
        results["pull"] = {}
        results["download"] = {}
        client = os.path.join(plan["bin"], "registry-library")
        client_env = dict(os.environ)
        client_tmp = os.path.join(work, "client-tmp")
        os.makedirs(client_tmp, exist_ok=True)
        client_env["TMPDIR"] = client_tmp
        client_env["HOME"] = work
        for stack, spec in sorted(plan["stacks"].items()):
            for version, starters in sorted(spec["versions"].items()):
                path = "/devfiles/%s/%s" % (stack, version)
                results["devfiles"][path], _ = get(path)
                for starter in starters:
                    sp = "%s/starter-projects/%s" % (path, starter)
                    results["starters"][sp] = get_digest(sp)
            dest = os.path.join(work, "pull", stack)
            os.makedirs(dest)
            results["pull"][stack] = run(
                [client, "pull", SERVER, stack, "--new-index-schema", "--all",
                 "--context", dest], client_env)
            for starter in spec["starters"]:
                dest = os.path.join(work, "download", stack, starter)
                os.makedirs(dest)
                results["download"]["%s/%s" % (stack, starter)] = run(
                    [client, "download", SERVER, stack, starter, "--new-index-schema",
                     "--context", dest], client_env)
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()
        # The end of the server's log, without oras's warnings about unknown media types.
        log = ""
        if os.path.exists(os.path.join(work, "server.log")):
            with open(os.path.join(work, "server.log"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            log = "\n".join([l for l in lines if "level=warning" not in l][-20:])
        results["server_log"] = log
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
