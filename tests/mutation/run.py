#!/usr/bin/env python3
"""Driver of tests/mutation/run.sh (see there). Mutations are listed in mutations.py."""
import os
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from mutations import MUTATIONS  # noqa: E402

SCRATCH = os.environ.get("ANGIOTRAIN_MUTATION_DIR", "/tmp/angiotrain-mutation")
TREE = os.path.join(SCRATCH, "tree")
TEST_TIMEOUT_S = 900


def in_scratch(command):
    """Runs a shell command with the scratch tree mounted over ROOT (private mount namespace)."""
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.insert(1, "--map-root-user")
    script = "mount --bind {0} {1} && cd {1} && {2}".format(shlex.quote(TREE), shlex.quote(ROOT), command)
    return subprocess.run(unshare + ["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=TEST_TIMEOUT_S + 1800)


def build_and_test(target, gtest_filter):
    build = in_scratch("cmake --build build --target {} 2>&1 | tail -20".format(shlex.quote(target))
                       + " && test ${PIPESTATUS[0]} -eq 0")
    if build.returncode != 0:
        return "build-failed", build.stdout
    test = in_scratch("timeout {} build/tests/{} --gtest_filter={}".format(
        TEST_TIMEOUT_S, shlex.quote(target), shlex.quote(gtest_filter)))
    return ("passed" if test.returncode == 0 else "failed"), test.stdout


def main():
    wanted = set(sys.argv[1:])
    unknown = wanted - {m["name"] for m in MUTATIONS}
    if unknown:
        sys.exit("run.sh: no mutation named " + ", ".join(sorted(unknown)))
    chosen = [m for m in MUTATIONS if not wanted or m["name"] in wanted]
    if not os.path.isdir(os.path.join(ROOT, "build")):
        sys.exit("run.sh: build the tree first (scripts/build.sh)")
    os.makedirs(TREE, exist_ok=True)
    print("copying the tree (with build/) to", TREE, flush=True)
    subprocess.run(["rsync", "-a", "--delete", "--exclude", ".git", ROOT + "/", TREE + "/"], check=True)

    # Every mutation's text must occur exactly once, or the list is stale.
    for m in chosen:
        text = open(os.path.join(TREE, m["file"])).read()
        if text.count(m["old"]) != 1:
            sys.exit("run.sh: mutation {}: the text to replace occurs {} times in {} (stale list?)".format(
                m["name"], text.count(m["old"]), m["file"]))

    # The unmutated tree must pass each test that is meant to catch a mutation.
    for target, gtest_filter in sorted({(m["target"], m["tests"]) for m in chosen}):
        status, log = build_and_test(target, gtest_filter)
        if status != "passed":
            print(log[-4000:])
            sys.exit("run.sh: {} --gtest_filter={} does not pass on the unmutated tree".format(target, gtest_filter))

    results = []
    for m in chosen:
        path = os.path.join(TREE, m["file"])
        original = open(path).read()
        started = time.time()
        try:
            with open(path, "w") as f:
                f.write(original.replace(m["old"], m["new"]))
            status, log = build_and_test(m["target"], m["tests"])
        finally:
            with open(path, "w") as f:
                f.write(original)  # a fresh mtime: the next build recompiles the restored file
        verdict = {"failed": "caught", "passed": "SURVIVED", "build-failed": "does not compile"}[status]
        results.append((m, verdict, time.time() - started))
        print("{:<34} {:<17} ({:.0f} s)".format(m["name"], verdict, time.time() - started), flush=True)
        if status == "build-failed":
            print(log[-2000:])

    print("\n| mutation | what it breaks | tests | result |\n| --- | --- | --- | --- |")
    for m, verdict, _ in results:
        print("| {} | {} | `{}` | {} |".format(m["name"], m["breaks"], m["tests"], verdict))
    survived = [m["name"] for m, v, _ in results if v != "caught"]
    print("\n{} of {} mutations caught{}".format(len(results) - len(survived), len(results),
                                                  "; not caught: " + ", ".join(survived) if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
