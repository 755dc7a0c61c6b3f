#!/usr/bin/env python3
"""test_readme_commands.py: README.md's command table and the dispatcher agree.

Every command `cpt --help` lists (and every subcommand `cpt data --help` lists) must have a
row in README.md's "What works today" table, and every command the table names must be one
the dispatcher knows. The oracle is the binary's own help output against the README text,
two independently written lists. Also: every command and subcommand the dispatcher lists
answers `--help` with exit 0 and a usage line, and no option line says its default twice (the
option table prints "(default X)" itself; a help string that also carries it reads
"(default 3) (default 3)"). Needs nothing but CPT_BIN and CPT_SRC.
"""
import os
import re
import subprocess
import sys


def help_names(args):
    p = subprocess.run([os.environ["CPT_BIN"]] + args, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        sys.exit("FAIL: `cpt %s` exit %d: %s" % (" ".join(args), p.returncode, p.stderr[-300:]))
    names, on = [], False
    for line in p.stdout.splitlines():
        if line.strip().endswith("commands:"):  # commands: / subcommands:
            on = True
            continue
        if on:
            m = re.match(r"^  (\S+)\s", line)
            if not m:
                if names:
                    break
                continue
            names.append(m.group(1))
    return names


def main():
    src = os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
    readme = open(os.path.join(src, "README.md"), encoding="utf-8").read()
    table = readme.split("## What works today", 1)[1].split("\n\n", 2)[1]
    rows = [l for l in table.splitlines() if l.startswith("| `cpt ")]
    listed = set()
    for row in rows:
        first_cell = row.split(" | ")[0]
        for m in re.finditer(r"`cpt (data )?([a-z][a-z-]*)", first_cell):
            listed.add(("data " if m.group(1) else "") + m.group(2))

    top = help_names(["--help"])
    sub = help_names(["data", "--help"])
    want = {c for c in top if c != "data"} | {"data " + s for s in sub}
    if not top or not sub:
        sys.exit("FAIL: could not read the command lists from `cpt --help` / `cpt data --help`")
    bad = False
    for c in sorted(want - listed):
        print("FAIL: `cpt %s` is in the dispatcher but not in README.md's command table" % c)
        bad = True
    for c in sorted(listed - want):
        print("FAIL: README.md's command table lists `cpt %s`, which the dispatcher does not have" % c)
        bad = True
    print("dispatcher: %d commands + %d data subcommands; README rows name %d" % (len(top), len(sub), len(listed)))
    # --help of every command and subcommand
    cmds = []
    for c in top:
        p = subprocess.run([os.environ["CPT_BIN"], c, "--help"], capture_output=True, text=True, timeout=60)
        subs = help_names([c, "--help"]) if "subcommands:" in p.stdout else []
        cmds += [[c, s_] for s_ in subs] or [[c]]
    n_opts = 0
    for c in cmds:
        p = subprocess.run([os.environ["CPT_BIN"]] + c + ["--help"], capture_output=True, text=True, timeout=60)
        if p.returncode != 0 or "usage: cpt " + " ".join(c) not in p.stdout:
            print("FAIL: `cpt %s --help`: exit %d, no usage line: %r" % (" ".join(c), p.returncode, (p.stdout + p.stderr)[:200]))
            bad = True
            continue
        for line in p.stdout.splitlines():
            if line.lstrip().startswith("--"):
                n_opts += 1
                if line.count("(default") > 1:
                    print("FAIL: `cpt %s --help` says the default twice: %s" % (" ".join(c), line.strip()))
                    bad = True
    print("--help: %d commands and subcommands, %d option lines" % (len(cmds), n_opts))
    if len(cmds) < len(top) or n_opts < 50:
        print("FAIL: read only %d commands / %d option lines from --help" % (len(cmds), n_opts))
        bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
