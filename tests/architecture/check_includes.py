#!/usr/bin/env python3
"""Reads every project #include and fails on an arrow that docs/ARCHITECTURE.md does not allow.

Two levels are checked: the layers (top-level folders, DESIGN.md: arrows go downward only) and
the rooms of experiments/ (one concept per folder). A file may include its own layer or room and
those listed for it below; anything else is an upward include, or a circle between rooms, and
fails with the file, the line and the arrow. It also fails on a code file directly in
experiments/ (every file belongs to a room) and on a file of a room that does not open with a
comment saying what it is for.

  check_includes.py [ROOT]      check the tree at ROOT (default: this checkout)
  check_includes.py --self-test check that the checker catches each kind of violation
"""
import os
import re
import sys
import tempfile

# Which layers a layer may include (besides itself). tests/ and bench/ may include anything.
LAYERS = {
    "core": [],
    "datasets": ["core"],
    "models": ["core"],
    "distributed": ["core"],
    "experiments": ["core", "datasets", "models", "distributed"],
    "slurm": ["core", "experiments"],
    "launcher": ["core", "datasets", "models", "distributed", "experiments", "slurm"],
}
# Which rooms of experiments/ a room may include (besides itself): evaluation at the bottom,
# training on it, monitoring and inference on training, sweeps on monitoring, reports on sweeps.
ROOMS = {
    "evaluation": [],
    "training": ["evaluation"],
    "monitoring": ["training", "evaluation"],
    "inference": ["training", "evaluation"],
    "sweeps": ["monitoring", "training", "evaluation"],
    "reports": ["sweeps", "training", "evaluation"],
}
CODE = (".h", ".hpp", ".cpp", ".cc")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def code_files(root, folder):
    for base, dirs, files in os.walk(os.path.join(root, folder)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(CODE):
                yield os.path.relpath(os.path.join(base, name), root)


def includes(root, path):
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield number, m.group(1)


def room_of(path):
    """'training' for experiments/training/x.h; '' for a file directly in experiments/."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "experiments" else ""


def find_circle(graph):
    """A list of rooms forming a circle in graph {room: set(rooms)}, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
            if nxt not in state:
                found = visit(nxt, trail + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def check(root):
    problems = []
    room_graph = {}
    for layer, allowed in LAYERS.items():
        for path in code_files(root, layer):
            room = room_of(path) if layer == "experiments" else None
            if layer == "experiments" and path.startswith("experiments/"):
                if room == "":
                    problems.append(f"{path}: code directly in experiments/; it belongs in one of its rooms "
                                    f"({', '.join(ROOMS)})")
                elif room not in ROOMS:
                    problems.append(f"{path}: experiments/{room}/ is not a room (docs/ARCHITECTURE.md lists "
                                    f"{', '.join(ROOMS)})")
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    if not f.readline().startswith("//"):
                        problems.append(f"{path}:1: a file of a room opens with a comment saying what it is for")
            for number, target in includes(root, path):
                top = target.split("/")[0]
                if top not in LAYERS or "/" not in target:
                    continue  # a system or third-party header
                if top != layer and top not in allowed:
                    problems.append(f"{path}:{number}: includes {target}: layer {layer}/ may include only "
                                    f"{', '.join(allowed) or 'nothing else'}")
                    continue
                if layer == "experiments" and top == "experiments" and room in ROOMS:
                    to = room_of(target)
                    if to == room:
                        continue
                    room_graph.setdefault(room, set()).add(to)
                    if to not in ROOMS.get(room, []):
                        problems.append(f"{path}:{number}: includes {target}: room {room}/ may include only "
                                        f"{', '.join(ROOMS[room]) or 'no other room'}")
    circle = find_circle(room_graph)
    if circle:
        problems.append("a circle between rooms: " + " -> ".join(circle))
    return problems


def self_test():
    """Each kind of violation in a small tree must be reported; a clean tree must pass."""
    def tree(files):
        root = tempfile.mkdtemp(prefix="check_includes_")
        for path, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        return root

    ok = {
        "experiments/evaluation/metrics.h": "// metrics\n#include \"core/error.h\"\n",
        "experiments/training/trainer.h": "// trainer\n#include \"experiments/evaluation/metrics.h\"\n",
        "datasets/volume_file.h": "// volume\n#include \"core/error.h\"\n#include <vector>\n",
    }
    cases = {
        "upward room": ({"experiments/evaluation/metrics.cpp":
                         "// m\n#include \"experiments/training/trainer.h\"\n"}, "room evaluation/ may include only"),
        "circle": ({"experiments/evaluation/x.h": "// x\n", "experiments/training/t.h": "// t\n",
                    "experiments/monitoring/a.h": "// a\n#include \"experiments/sweeps/b.h\"\n",
                    "experiments/sweeps/b.h": "// b\n#include \"experiments/monitoring/a.h\"\n"},
                   "a circle between rooms"),
        "upward layer": ({"models/efficientnet.h": "// e\n#include \"datasets/volume_file.h\"\n"},
                         "layer models/ may include only"),
        "launcher included": ({"experiments/training/t.cpp": "// t\n#include \"launcher/commands.h\"\n"},
                              "layer experiments/ may include only"),
        "flat file": ({"experiments/trainer.cpp": "// t\n"}, "code directly in experiments/"),
        "unknown room": ({"experiments/misc/x.cpp": "// x\n"}, "is not a room"),
        "no opening comment": ({"experiments/sweeps/s.cpp": "#include \"experiments/training/trainer.h\"\n"},
                               "opens with a comment"),
    }
    failures = []
    if check(tree(ok)):
        failures.append(f"a clean tree was refused: {check(tree(ok))}")
    for name, (files, expected) in cases.items():
        problems = check(tree({**ok, **files}))
        if not any(expected in p for p in problems):
            failures.append(f"{name}: expected a problem with '{expected}', got {problems}")
    for f in failures:
        print("self-test FAILED:", f)
    print(f"self-test: {len(cases) - len(failures)} of {len(cases)} violations caught" if not failures else "")
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"check_includes: {len(problems)} problem(s); the allowed arrows are in docs/ARCHITECTURE.md")
        return 1
    print("check_includes: every include follows the layers and rooms of docs/ARCHITECTURE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
