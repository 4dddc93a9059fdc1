#!/usr/bin/env python3
"""Import cycles between the files of a crate, from its `use crate::`, `super::` and
`crate::…` paths (test modules and comments left out; a folder's `pub use` re-exports are
followed to the file that defines the item).

    scripts/import-cycles.py [userspace/vxdecap/src]

Prints each cycle (files), then the folder-level dependencies; exits 1 when a file-level
cycle exists.
"""

import re
import sys
from pathlib import Path

args = [a for a in sys.argv[1:] if a != "-v"]
root = Path(args[0] if args else "userspace/vxdecap/src")


def module_of(path: Path) -> tuple:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


files = {
    module_of(p): p
    for p in root.rglob("*.rs")
    if p.name != "main.rs" and "cli" not in p.relative_to(root).parts
}


def code_of(path: Path) -> str:
    """The file without comments and without its `#[cfg(test)]` module."""
    text = path.read_text()
    cut = text.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        text = text[:cut]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def expand(prefix: str, body: str) -> list:
    """`a::{b, c::{d, e}}` into ['a::b', 'a::c::d', 'a::c::e']."""
    out, depth, item = [], 0, ""
    for ch in body + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            item = item.strip()
            if item:
                m = re.match(r"^([\w:]*?)::\{(.*)\}$", item, re.S)
                if m:
                    out += expand(f"{prefix}{m.group(1)}::", m.group(2))
                else:
                    out.append(prefix + item.split(" as ")[0].strip())
            item = ""
        else:
            item += ch
    return out


def paths_in(module: tuple, code: str) -> list:
    """Every path to another module of the crate, absolute (a tuple of names)."""
    found = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::\w+)*)::\{(.*?)\};", code, re.S):
        found += expand(m.group(1) + "::", m.group(2))
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", code):
        found.append(m.group(1))
    absolute = []
    for p in found:
        parts = p.split("::")
        if parts[0] == "crate":
            parts = parts[1:]
        else:
            base = list(module)
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super":
                    base = base[:-1]
                parts = parts[1:]
            parts = base + parts
        absolute.append(tuple(parts))
    return absolute


# Re-exports of folder modules: (module, name) -> defining module.
aliases = {}
for module, path in files.items():
    code = code_of(path)
    for m in re.finditer(r"\bpub use\s+(?:self::)?(\w+)::\{(.*?)\};", code, re.S):
        for item in expand("", m.group(2)):
            aliases[module + (item.split("::")[-1],)] = module + (m.group(1),) + tuple(
                item.split("::")[:-1]
            )
    for m in re.finditer(r"\bpub use\s+(?:self::)?(\w+)::([\w:]+);", code):
        name = m.group(2).split("::")[-1]
        aliases[module + (name,)] = module + (m.group(1),) + tuple(m.group(2).split("::")[:-1])


def resolve(path: tuple):
    """The file a path lands in: the longest module prefix, through re-exports."""
    for _ in range(8):
        if path in aliases:
            path = aliases[path]
            continue
        break
    for n in range(len(path), 0, -1):
        if path[:n] in aliases:
            return resolve(aliases[path[:n]] + path[n:])
        if path[:n] in files:
            return path[:n]
    return None


graph = {m: set() for m in files}
for module, path in files.items():
    code = code_of(path)
    # A folder's own `pub use` lines are its facade, not a dependency.
    facade = re.sub(r"\bpub use\s+[^;]*;", "", code) if path.name in ("mod.rs", "lib.rs") else code
    for p in paths_in(module, facade):
        target = resolve(p)
        if target is not None and target != module and target != module[: len(target)]:
            graph[module].add(target)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop()
            on.discard(w)
            scc.append(w)
            if w == v:
                break
        if len(scc) > 1:
            sccs.append(scc)


sys.setrecursionlimit(10000)
for v in list(graph):
    if v not in index:
        visit(v)

name = lambda m: "::".join(m) or "crate"
for scc in sccs:
    print("cycle:", " <-> ".join(sorted(name(m) for m in scc)))
folders = {}
for m, deps in graph.items():
    for d in deps:
        if m and d and m[0] != d[0]:
            folders.setdefault(m[0], set()).add(d[0])
for f in sorted(folders):
    print(f"{f} -> {', '.join(sorted(folders[f]))}")
if "-v" in sys.argv:
    for m in sorted(graph):
        for d in sorted(graph[m]):
            if m and d and m[0] != d[0]:
                print(f"  {name(m)} -> {name(d)}")
print(f"{len(files)} files, {sum(len(d) for d in graph.values())} edges, {len(sccs)} cycle(s)")
sys.exit(1 if sccs else 0)
