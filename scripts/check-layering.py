#!/usr/bin/env python3
"""The layering check: fails when a file includes across a forbidden boundary.

    scripts/check-layering.py [--root DIR] [--verbose] [--self-test]

Scans the #include lines of include/, src/, server/ and tools/ and checks each one
against the table LAYERS below (docs/architecture.md cites it). It also checks that
no channel name (CHANNEL_NAMES: "Direct", "Redis", "S3", "InProcess", "InProcessStore")
appears as a string literal in src/ or include/ outside that channel's own folder: the
rest of the code iterates the registered channels instead of spelling their names.

Exit status 0 when every include is allowed, 1 with one line per violation
(file:line: the rule that forbids it), 2 on bad usage. Python 3, no dependencies.
Folders of the layout that do not exist (yet) are simply not scanned.

How an include is placed in the tree: "fmi/x.h" and <fmi/x.h> are the public header
include/fmi/x.h; any other quoted include is looked up, in order, next to the
including file, under src/ (the library's private include directory), under include/
and from the top of the tree ("tools/common/cli.h"); a path that exists nowhere yet is
placed by its first component (channels/..., wire/..., base/... -> src/...). Other
<...> includes are system or third-party headers, which every layer may use.
"""
import argparse
import os
import re
import sys

# --------------------------------------------------------------------------------
# The rules. One row per layer: the files it holds (first matching row wins, so the
# specific rows come before the general ones) and what those files may include.
# "<x>" stands for one folder name and means "the same folder as the includer":
# src/channels/redis/ may include src/channels/redis/**, not src/channels/s3/**.
# "**" matches any path (several folders), "*" one name inside a folder.
# "!glob" forbids what it matches even when another entry allows it.
# Anything under the scanned folders that no row holds is a violation too (a file
# outside the layout, e.g. the old src/core/).

PUBLIC = "include/fmi/**"
# The floors below the policy and the Communicator use the public API without its
# top: a channel that included fmi/model.h would reach into the policy (its model
# comes from its own descriptor), one that included fmi/communicator.h would sit
# above the layer that uses it.
NOT_TOP = ["!include/fmi/communicator.h", "!include/fmi/policy.h", "!include/fmi/model.h",
           "!include/fmi/fmi.h"]

LAYERS = [
    # layer                files                       may include
    ("public API",         "include/**",               [PUBLIC]),
    ("base",               "src/base/**",              ["src/base/**", PUBLIC, *NOT_TOP]),
    ("collectives",        "src/collectives/**",       ["src/collectives/**", "src/base/**", PUBLIC,
                                                        *NOT_TOP]),
    ("channels/common",    "src/channels/common/**",   ["src/channels/common/**", "src/base/**", PUBLIC,
                                                        *NOT_TOP]),
    ("channel Direct",     "src/channels/direct/**",   ["src/channels/direct/**", "src/channels/common/**",
                                                        "src/channels/registry.h", "src/wire/**",
                                                        "src/base/**", PUBLIC, *NOT_TOP]),
    ("channel <x>",        "src/channels/<x>/**",      ["src/channels/<x>/**", "src/channels/common/**",
                                                        "src/channels/registry.h", "src/base/**", PUBLIC,
                                                        *NOT_TOP]),
    # registry.{h,cpp}: one line per channel, so it includes every channel's descriptor.
    ("channel registry",   "src/channels/*",           ["src/channels/**", "src/base/**", PUBLIC, *NOT_TOP]),
    ("wire",               "src/wire/**",              ["src/wire/**", "src/base/**", PUBLIC, *NOT_TOP]),
    ("policy",             "src/policy/**",            ["src/policy/**", "src/collectives/**",
                                                        "src/channels/registry.h", "src/base/**", PUBLIC]),
    ("communicator",       "src/communicator/**",      ["src/**", PUBLIC]),
    # FMI::Lambda (include/fmi/lambda.h) sits on the public API, the Communicator included.
    ("lambda",             "src/lambda/**",            ["src/lambda/**", "src/base/**", PUBLIC]),
    # The MPI layer sits on the public API like an application: no library internals.
    ("mpi",                "src/mpi/**",               ["src/mpi/**", PUBLIC]),
    ("server",             "server/**",                ["server/**", "src/wire/**", "src/base/**", PUBLIC,
                                                        *NOT_TOP]),
    # tools/common is used by bench/baseline without FMI: only cli.h, fd.h and paths.h
    # are free of the public API; operation.h uses it (and is used only by tools that link FMI).
    ("tools/common",       "tools/common/**",          ["tools/common/**", PUBLIC]),
    ("tool <x>",           "tools/<x>/**",             ["tools/<x>/**", "tools/common/**", PUBLIC]),
]

# Tool-by-tool exceptions to the table: (includer glob, included glob, why).
EXCEPTIONS = [
    ("tools/fmirun/**", "src/channels/direct/config.h",
     "fmirun starts the rendezvous server the Direct section names (host, port)"),
    ("tools/fmi-calibrate/**", "src/channels/*/config.h",
     "fmi-calibrate measures each channel and writes its typed model section"),
]

SCANNED = ["include", "src", "server", "tools"]
SOURCE_EXTENSIONS = (".h", ".hh", ".hpp", ".c", ".cc", ".cpp", ".cxx", ".ipp", ".inl")

# A channel's name may be written as a string literal only in its own folder.
CHANNEL_NAMES = {
    "Direct": "src/channels/direct/",
    "Redis": "src/channels/redis/",
    "S3": "src/channels/s3/",
    "InProcess": "src/channels/inproc/",
    "InProcessStore": "src/channels/inproc/",
}
NAME_CHECKED = ["include", "src"]

# Top-level folders of src/: an include "channels/..." that does not exist yet is
# still placed under src/ (the tree is being moved into this layout).
SRC_FOLDERS = ("base", "collectives", "channels", "wire", "policy", "communicator", "lambda", "mpi", "core")

# --------------------------------------------------------------------------------

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def glob_to_re(pattern, x=None):
    """A glob of LAYERS as a regex: ** any path, * one name, <x> a folder name
    (the given one, or any when x is None, captured as group 'x')."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern.startswith("<x>", i):
            out += re.escape(x) if x is not None else "(?P<x>[^/]+)"
            i += 3
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def layer_of(path):
    """(layer name, allowed globs with <x> filled in) of a repository-relative path,
    or None when no row of LAYERS holds it."""
    for name, files, allowed in LAYERS:
        m = glob_to_re(files).match(path)
        if m:
            x = m.groupdict().get("x")
            if x is not None:
                name = name.replace("<x>", x)
                allowed = [a.replace("<x>", x) for a in allowed]
            return name, allowed
    return None


def allowed_by(target, allowed):
    if any(glob_to_re(a[1:]).match(target) for a in allowed if a.startswith("!")):
        return False
    return any(glob_to_re(a).match(target) for a in allowed if not a.startswith("!"))


def describe(allowed):
    """The allowed list of a row for a message: "a, b, include/fmi/** except x.h, y.h"."""
    text = ", ".join(a for a in allowed if not a.startswith("!"))
    denied = [a[1:].replace("include/fmi/", "") for a in allowed if a.startswith("!")]
    return text + (" except " + ", ".join(denied) if denied else "")


def resolve(root, includer, kind, name):
    """The repository-relative path an include refers to, or None for a system or
    third-party header."""
    name = os.path.normpath(name).replace(os.sep, "/")
    if name.startswith("fmi/"):
        return "include/" + name
    if kind == "<":
        return None
    here = os.path.dirname(includer)
    for cand in (os.path.join(here, name), "src/" + name, "include/" + name, name):
        cand = os.path.normpath(cand).replace(os.sep, "/")
        if not cand.startswith("..") and os.path.isfile(os.path.join(root, cand)):
            return cand
    first = name.split("/", 1)[0]
    if "/" in name and first in SRC_FOLDERS:
        return "src/" + name
    if "/" in name and first in ("tools", "server", "include", "src"):
        return name
    if "/" not in name:
        return os.path.normpath(os.path.join(here, name)).replace(os.sep, "/")
    return None  # e.g. a generated header or one from a third-party include path


def source_files(root, folders):
    for top in folders:
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            continue
        for d, subdirs, files in os.walk(base):
            subdirs.sort()
            for f in sorted(files):
                if f.endswith(SOURCE_EXTENSIONS):
                    yield os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")


def strip_comments(text):
    """The text with comments blanked (newlines kept, so line numbers stay) and the
    string and character literals kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join("\n" if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            # A raw string R"d(...)d" is kept whole.
            if c == '"' and i > 0 and text[i - 1] == "R":
                m = re.match(r'"([^(\s]*)\(', text[i:])
                if m:
                    end = text.find(")" + m.group(1) + '"', i)
                    end = n if end < 0 else end + len(m.group(1)) + 2
                    out.append(text[i:end])
                    i = end
                    continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


STRING_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def check(root, verbose=False):
    violations, notes, counted = [], [], 0
    for path in source_files(root, SCANNED):
        try:
            with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n")
        except OSError as e:
            violations.append(f"{path}: cannot read: {e}")
            continue
        layer = layer_of(path)
        if layer is None:
            violations.append(f"{path}: outside the layout: no row of the table holds this file")
            continue
        name, allowed = layer
        for lineno, line in enumerate(lines, 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            counted += 1
            kind, inc = m.group(1), m.group(2)
            target = resolve(root, path, kind, inc)
            if target is None:
                if path.startswith("include/") and kind == '"':
                    violations.append(f'{path}:{lineno}: [{name}] includes "{inc}": a public header '
                                      f"includes only include/fmi/ and system or third-party <...> headers")
                elif verbose:
                    notes.append(f"{path}:{lineno}: {inc}: not in this tree (system or third party)")
                continue
            if allowed_by(target, allowed):
                continue
            if any(glob_to_re(a).match(path) and glob_to_re(b).match(target) for a, b, _ in EXCEPTIONS):
                continue
            to = layer_of(target)
            to_name = to[0] if to else "outside the layout"
            violations.append(f"{path}:{lineno}: [{name}] may not include {target} [{to_name}]; "
                              f"allowed: {describe(allowed)}")

    for path in source_files(root, NAME_CHECKED):
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            code = strip_comments(f.read())
        for lineno, line in enumerate(code.split("\n"), 1):
            if INCLUDE_RE.match(line):
                continue
            for lit in STRING_RE.findall(line):
                home = CHANNEL_NAMES.get(lit)
                if home and not path.startswith(home):
                    violations.append(f'{path}:{lineno}: channel name "{lit}" as a string literal outside '
                                      f"{home} (iterate the registered channels instead)")
    return violations, notes, counted



# A tree with one allowed and one forbidden include per rule, and the violations the
# check must report on it (file:line). Run by ctest as layering.self_test, so that a
# rule that stops biting fails a test.
SELF_TEST_TREE = {
    "include/fmi/types.h": "#include <cstdint>\n",
    "include/fmi/model.h": '#include "fmi/types.h"\n',
    "include/fmi/bad.h": '#include "policy/models.h"\n#include "fmi/types.h"\n#include <vector>\n',
    "src/base/config.cpp": '#include "base/config.h"\n#include "fmi/types.h"\n#include "channels/registry.h"\n',
    "src/base/config.h": "",
    "src/collectives/p2p.cpp": '#include "collectives/collectives.h"\n#include "policy/models.h"\n',
    "src/channels/registry.h": "",
    "src/channels/registry.cpp": '#include "channels/redis/descriptor.h"\n#include "channels/s3/descriptor.h"\n',
    "src/channels/common/tag_matcher.h": '#include "base/errors.h"\n#include "channels/redis/connection.h"\n',
    "src/channels/redis/descriptor.h": '#include "channels/registry.h"\n',
    "src/channels/redis/redis.cpp": ('#include "connection.h"\n#include "channels/common/tag_matcher.h"\n'
                                     '#include "channels/s3/client.h"\n#include "collectives/collectives.h"\n'
                                     '#include "fmi/model.h"\n#include "wire/socket.h"\n'
                                     'const char* n = "Redis";\n'),
    "src/channels/s3/descriptor.h": "",
    "src/channels/direct/direct.cpp": '#include "wire/socket.h"\n#include "policy/models.h"\n',
    "src/wire/socket.h": '#include "base/errors.h"\n#include "channels/direct/mesh.h"\n',
    "src/policy/models.cpp": ('#include "collectives/collectives.h"\n#include "channels/registry.h"\n'
                              '#include "channels/redis/descriptor.h"\n'
                              '// "Direct" in a comment is fine\nauto x = "S3"; auto y = "S3 bucket";\n'),
    "src/communicator/communicator.cpp": '#include "channels/redis/redis.h"\n#include "policy/models.h"\n',
    "src/core/old.cpp": "",
    "src/lambda/runtime.cpp": '#include "lambda/http.h"\n#include "fmi/communicator.h"\n#include "channels/s3/client.h"\n',
    "src/mpi/env.cpp": '#include "mpi/state.h"\n#include "fmi/communicator.h"\n#include "communicator/sub_channel.h"\n',
    "src/mpi/state.h": "",
    "server/server.cpp": '#include "wire/socket.h"\n#include "channels/direct/protocol.h"\n',
    "tools/common/cli.h": '#include <string>\n#include "fmi/types.h"\n',
    "tools/fmi-model/main.cpp": '#include "tools/common/cli.h"\n#include "fmi/model.h"\n#include "policy/models.h"\n',
    "tools/fmirun/fmirun.cpp": '#include "channels/direct/config.h"\n#include "channels/redis/config.h"\n',
}
SELF_TEST_EXPECTED = [
    "include/fmi/bad.h:1", "src/base/config.cpp:3", "src/collectives/p2p.cpp:2",
    "src/channels/common/tag_matcher.h:2", "src/channels/redis/redis.cpp:3",
    "src/channels/redis/redis.cpp:4", "src/channels/redis/redis.cpp:5", "src/channels/redis/redis.cpp:6",
    "src/channels/direct/direct.cpp:2", "src/wire/socket.h:2", "src/policy/models.cpp:3",
    "src/policy/models.cpp:5", "src/core/old.cpp", "src/lambda/runtime.cpp:3", "src/mpi/env.cpp:3", "server/server.cpp:2", "tools/fmi-model/main.cpp:3",
    "tools/fmirun/fmirun.cpp:2",
]


def self_test():
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        for path, text in SELF_TEST_TREE.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        violations, _, _ = check(root)
    found = sorted(v.split(": ", 1)[0] for v in violations)
    expected = sorted(SELF_TEST_EXPECTED)
    if found != expected:
        print("check-layering self-test FAILED")
        for v in sorted(set(expected) - set(found)):
            print("  not reported: " + v)
        for v in violations:
            if v.split(": ", 1)[0] not in expected:
                print("  reported, not expected: " + v)
        return 1
    print(f"check-layering self-test: OK ({len(found)} planted violations reported, nothing else)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    help="top of the source tree (default: the parent of scripts/)")
    ap.add_argument("--verbose", action="store_true", help="also list the includes from outside the tree")
    ap.add_argument("--self-test", action="store_true",
                    help="check the rules on a planted tree instead (what ctest's layering.self_test runs)")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not os.path.isdir(args.root):
        print(f"check-layering: {args.root} is not a directory", file=sys.stderr)
        return 2
    violations, notes, counted = check(args.root, args.verbose)
    for n in notes:
        print("note: " + n)
    for v in violations:
        print(v)
    if violations:
        print(f"check-layering: {len(violations)} violation(s) in {counted} includes "
              f"(rules: the table LAYERS in scripts/check-layering.py, docs/architecture.md)")
        return 1
    print(f"check-layering: OK ({counted} includes checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
