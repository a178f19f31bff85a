#!/usr/bin/env python3
"""Fails when the host crate's modules break the layering ARCHITECTURE.md states.

Every file under host/src is a module; an edge A -> B is a `use` (or an inline path) in A
naming an item of B, resolved to the deepest module file the path names. `mod.rs` files only
declare and re-export, so a child naming its parent's items directly shows up as a cycle.
Test code (`#[cfg(test)] mod tests { ... }`, `tests.rs`, `*_tests.rs`) is left out.

Checked:
1. no import cycles between modules;
2. every import goes to the same room (top-level module) or to one on a lower floor (FLOORS);
3. the rules below, each with its reason.

Usage: layering.py [HOST_SRC]   (default: host/src beside this script's parent)
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "host", "src")

# Rooms from the top floor down. A room may import its own modules and any room on a lower
# floor, never one on its own floor or above (rooms on one floor are independent).
FLOORS = [
    ["cli"],
    ["runtime"],  # the composition root: store backend, host, queues, upkeep, scheduler, HTTP
    ["server"],
    ["scheduler"],
    ["config"],
    ["service"],
    ["processor"],
    ["store", "workers"],
    ["metrics", "history", "events", "schedule", "plugins", "limits"],
    ["job", "cron"],
    ["clock", "ids", "sync", "durations"],
    ["text"],
]

# Concrete stores: naming one of these means opening or driving a backend directly.
BACKEND_NAMES = re.compile(r"\b(SledStore|PgStore|store::sled|store::postgres)\b|\bpostgres::\w")

# (description, modules it applies to, forbidden target rooms or a regex over the source)
RULES = [
    (
        "the HTTP server serves the host it is handed: it never names the store or the processor",
        lambda m: m[:1] == ("server",),
        {"store", "processor"},
    ),
    (
        "the CLI reaches the store only through cli/stores.rs (offline store commands, bench baseline)",
        lambda m: m[:1] == ("cli",) and m != ("cli", "stores"),
        {"store"},
    ),
    (
        "the CLI reaches the worker pools only through the service",
        lambda m: m[:1] == ("cli",),
        {"processor"},
    ),
    (
        "config holds no backend code (which store, and connecting to it, is runtime's)",
        lambda m: m[:1] == ("config",),
        BACKEND_NAMES,
    ),
    (
        "only the composition root (runtime), the store itself and cli/stores.rs name a concrete store",
        lambda m: m[:1] not in (("runtime",), ("store",)) and m != ("cli", "stores"),
        BACKEND_NAMES,
    ),
]


def module_of(path):
    rel = os.path.relpath(path, ROOT)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    # Drop `#[cfg(test)] mod name { ... }` blocks.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand(tree):
    """`a::{b::C, d}` -> ['a::b::C', 'a::d']"""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not m:
        return [tree.split(" as ")[0].strip()]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    return [p for part in parts if part.strip() for p in expand(prefix + part.strip())]


def main():
    modules = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs") and f != "tests.rs" and not f.endswith("_tests.rs"):
                path = os.path.join(dirpath, f)
                modules[module_of(path)] = path
    edges = {m: set() for m in modules}
    texts = {}
    for mod, path in modules.items():
        here = mod  # `self`; each `super` goes one up from it
        text = strip(open(path).read())
        texts[mod] = text
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            paths += expand(m.group(1))
        paths += re.findall(r"\b(?:crate|super|self)(?:::\w+)+", text)
        children = {m[-1] for m in modules if len(m) == len(here) + 1 and m[: len(here)] == here}
        for p in paths:
            segs = [s for s in p.replace(" ", "").split("::") if s]
            if segs and segs[0] in children and segs[0] not in ("crate", "super", "self"):
                segs = ["self"] + segs  # `use queue::Queue;` in a parent names its child
            if not segs or segs[0] not in ("crate", "super", "self"):
                continue
            if segs[0] == "crate":
                base, segs = [], segs[1:]
            elif segs[0] == "self":
                base, segs = list(here), segs[1:]
            else:
                base = list(here)
                while segs and segs[0] == "super":
                    base = base[:-1]
                    segs = segs[1:]
            full = tuple(base) + tuple(segs)
            target = max((full[:n] for n in range(len(full) + 1) if full[:n] in modules), key=len)
            if target != mod:
                edges[mod].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
    for v in modules:
        if v not in index:
            visit(v)
    name = lambda m: os.path.relpath(modules[m], os.path.join(ROOT, ".."))
    problems = 0
    for scc in sccs:
        members = set(scc)
        print("import cycle among: " + ", ".join(sorted(name(m) for m in scc)))
        for m in sorted(scc):
            for t in sorted(edges[m] & members):
                print(f"    {name(m)} -> {name(t)}")
        problems += 1
    room = lambda m: m[0].removesuffix(".rs") if m else "lib"
    floor = {r: i for i, rooms in enumerate(FLOORS) for r in rooms}
    for m in sorted(modules):
        if room(m) not in floor and m:
            print(f"{name(m)}: room `{room(m)}` has no floor in .ci/layering.py's FLOORS")
            problems += 1
    for m in sorted(modules):
        for t in sorted(edges[m]):
            a, b = room(m), room(t)
            if a == b or "lib" in (a, b) or a not in floor or b not in floor:
                continue
            if floor[b] <= floor[a]:
                how = "its own floor" if floor[b] == floor[a] else "a floor above"
                print(f"{name(m)} imports {name(t)}: `{b}` is on {how} of `{a}`")
                problems += 1
    for why, applies, forbidden in RULES:
        for m in sorted(modules):
            if not m or not applies(tuple(p.removesuffix(".rs") for p in m)):
                continue
            if isinstance(forbidden, set):
                for t in sorted(edges[m]):
                    if room(t) in forbidden:
                        print(f"{name(m)} imports {name(t)}: {why}")
                        problems += 1
            else:
                hit = forbidden.search(texts[m])
                if hit:
                    print(f"{name(m)} names `{hit.group(0)}`: {why}")
                    problems += 1
    if problems:
        print(f"{problems} layering problem(s); see ARCHITECTURE.md")
        sys.exit(1)
    print(f"layering holds: no import cycles among {len(modules)} host modules, every import goes down a floor, {len(RULES)} rules hold")


main()
