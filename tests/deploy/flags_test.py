"""Every `prunerd serve`, `prunerd <command>` and `prunectl <command>` invocation written in
deploy/ (scripts, recipes, unit, manifests) and in the README's Deploy section uses only flags
that command's --help lists. (The other deploy tests check the structured files in depth; this
one catches a renamed or removed flag anywhere a person would copy a command from.)
"""

import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testlib as t  # noqa: E402

files = [p for p in glob.glob(t.src("deploy", "**", "*"), recursive=True) if os.path.isfile(p)]
files.append(t.src("Dockerfile"))
texts = {os.path.relpath(p, t.SOURCE_DIR or "."): open(p, errors="replace").read() for p in files}
readme = open(t.src("README.md")).read()
m = re.search(r"^## Deploy\n(.*?)(?=^## )", readme, re.S | re.M)
t.check(m is not None, "README.md has no Deploy section")
if m:
    texts["README.md (Deploy)"] = m.group(1)

# prunerd's and prunectl's subcommands and their flags, from --help.
helps = {}


def flags_of(tool, command):
    key = (tool, command)
    if key not in helps:
        helps[key] = t.help_flags([t.binary(tool), command])
    return helps[key]


COMMANDS = {"prunerd": {"serve", "eval", "oneshot"},
            "prunectl": {"submit", "get", "list", "watch", "wait", "cancel", "download", "info",
                         "health"}}
invocation = re.compile(r"""(?<![\w-])(prunerd|prunectl|PRUNECTL|prune-gate(?:\.sh)?)["'}]?\s+(\w[\w-]*)?""")
checked = 0
for name, text in texts.items():
    # Logical lines: shell and YAML continuations joined.
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        for im in invocation.finditer(line):
            tool, command = im.group(1), im.group(2)
            if tool.startswith("prune-gate"):  # its arguments go to prunectl submit
                tool, command = "prunectl", "submit"
                rest = line[im.start(2):] if im.group(2) else line[im.end():]
            else:
                tool = "prunectl" if tool.upper() == "PRUNECTL" else tool
                if command not in COMMANDS[tool]:
                    continue
                rest = line[im.end():]
            nxt = invocation.search(rest)  # up to the next command on the line
            rest = rest[:nxt.start()] if nxt else rest
            rest = re.split(r"\s(?:\||;|&&|\|\||>|2>)\s|`|\)", rest)[0]
            used = t.flags_in(rest)
            if not used:
                continue
            bad = t.unknown_flags(used, flags_of(tool, command))
            checked += 1
            t.check(not bad, f"{name}: `{tool} {command}` with {', '.join('--' + b for b in bad)}, "
                             f"which {tool} {command} --help does not list:\n  {line.strip()}")
print(f"checked {checked} invocations in {len(texts)} files")
t.check(checked >= 10, f"only {checked} invocations found: the pattern missed them")
t.finish("flags in deploy/ and the README's Deploy section")
