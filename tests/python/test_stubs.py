"""The type stubs (python/fmi.pyi) describe what the module has."""

import ast
import os

import fmi

STUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "fmi.pyi")


def stub_names():
    tree = ast.parse(open(STUB).read())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top.add(node.name)
            members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | {
                n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
        elif isinstance(node, ast.AnnAssign):
            top.add(node.target.id)
        elif isinstance(node, ast.FunctionDef):  # module functions (wait_all, wait_any)
            top.add(node.name)
    return top, members


def public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stub_matches_module():
    top, members = stub_names()
    assert public(fmi) - {"Buffer"} <= top | {"annotations"}, public(fmi) - top
    for cls in ("Communicator", "InProcessHub", "types", "func", "Channel", "Status", "Request"):
        assert public(getattr(fmi, cls)) <= members[cls], (cls, public(getattr(fmi, cls)) - members[cls])
    for enum_name in ("datatypes", "op", "hints"):
        values = set(getattr(fmi, enum_name).__members__)
        assert values == members[enum_name], enum_name
