#!/usr/bin/env python3
"""List every Rust function in src/ longer than a limit (default 80 lines), longest first.

A function runs from its `fn` line to the line of its closing brace, found by counting braces
outside strings, chars and comments. Exit status 1 when any function is over the limit, so CI
can run it: `python3 scripts/long_functions.py [LIMIT]`.
"""
import pathlib
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def strip(line, state):
    """The line's code with strings, chars and comments blanked; `state` carries a block comment."""
    out, i, n = [], 0, len(line)
    while i < n:
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"], i = False, j + 2
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"], i = True, i + 2
            continue
        if c == '"' or (c == "r" and re.match(r'r#*"', line[i:])):
            m = re.match(r'r(#*)"', line[i:])
            if m:
                end = '"' + m.group(1)
                j = line.find(end, i + len(m.group(0)))
                i = n if j < 0 else j + len(end)
                continue
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            i = j + 1
            continue
        if c == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.[^']*|[^\\'])'", line[i:]).group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    lines = path.read_text().splitlines()
    state = {"block": False}
    code = [strip(l, state) for l in lines]
    for k, l in enumerate(lines):
        m = FN.match(l)
        if not m or state_is_comment(l):
            continue
        depth, opened = 0, False
        for j in range(k, len(lines)):
            if not opened and ";" in code[j] and "{" not in code[j]:
                break  # a declaration without a body (trait method)
            depth += code[j].count("{") - code[j].count("}")
            opened = opened or "{" in code[j]
            if opened and depth == 0:
                yield m.group(6), k + 1, j - k + 1
                break


def state_is_comment(line):
    return line.lstrip().startswith("//")


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    root = pathlib.Path(__file__).resolve().parent.parent / "src"
    found = []
    for p in sorted(root.rglob("*.rs")):
        for name, line, length in functions(p):
            found.append((length, f"{p.relative_to(root.parent)}:{line}", name))
    over = sorted((f for f in found if f[0] > limit), reverse=True)
    for length, at, name in over:
        print(f"{length:5} lines  {at}  {name}")
    longest = max(found) if found else (0, "-", "-")
    print(f"{len(found)} functions in src/; {len(over)} over {limit} lines; longest {longest[0]} ({longest[2]}, {longest[1]})")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
