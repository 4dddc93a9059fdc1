#!/usr/bin/env python3
"""The longest Rust functions, by lines from `fn` to its closing brace.

    scripts/fn-lengths.py [--max N] [--top K] [PATH…]   (default: userspace bench)

Strings, chars and comments are skipped when matching braces. Exits 1 when a
function outside test code (`#[cfg(test)]` modules, `tests/` folders) is
longer than N lines (default 120).
"""

import re
import sys
from pathlib import Path

args = sys.argv[1:]
limit, top = 120, 10
if "--max" in args:
    i = args.index("--max")
    limit = int(args[i + 1])
    del args[i : i + 2]
if "--top" in args:
    i = args.index("--top")
    top = int(args[i + 1])
    del args[i : i + 2]
roots = [Path(a) for a in args] or [Path("userspace"), Path("bench")]


def blank_out(text: str) -> str:
    """The text with comments, strings and chars replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i : i + 4]) or text.startswith("'\\", i):
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x..|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


results = []
for root in roots:
    for path in sorted(root.rglob("*.rs")):
        if "target" in path.parts:
            continue
        raw = path.read_text()
        code = blank_out(raw)
        test_from = code.find("#[cfg(test)]")
        for m in re.finditer(r"\bfn\s+(\w+)[^;{]*\{", code):
            start = m.start()
            depth, j = 0, m.end() - 1
            while j < len(code):
                if code[j] == "{":
                    depth += 1
                elif code[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            first = code.count("\n", 0, start) + 1
            last = code.count("\n", 0, j) + 1
            in_test = "tests" in path.parts or (0 <= test_from < start)
            results.append((last - first + 1, f"{path}:{first}", m.group(1), in_test))

results.sort(reverse=True)
for lines, place, name, in_test in results[:top]:
    print(f"{lines:5} {name} {place}{' (test)' if in_test else ''}")
over = [r for r in results if r[0] > limit and not r[3]]
for lines, place, name, _ in over:
    print(f"over {limit} lines: {name} ({lines}) at {place}", file=sys.stderr)
sys.exit(1 if over else 0)
