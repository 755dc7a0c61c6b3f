#!/usr/bin/env python3
"""svg_oracle.py SVG [--run RUN_DIR] [--expect NAME=POINTS:SEGMENTS ...] [--png OUT]
Checks a chart written by cpt_plot_svg (driven by test_plot.c; not a test by itself):
- the file is well-formed XML (xml.etree) with an <svg> root and a viewBox;
- there is exactly one <path data-series=NAME> per expected series, with the expected
  number of points (M/L coordinate pairs) and subpaths (gaps break a line), and every
  point lies inside the plot rectangle of its panel;
- with --run, the expectations are derived here from RUN_DIR/metrics.jsonl, independently
  of the C reader: "train loss"/"learning rate" = train lines with a number, one series
  per eval set (ppl/<set>, else exp(loss/<set>)), "<set> base" (2 points) when the set
  was evaluated at step 0;
- with --png, renders it with rsvg-convert (if installed) for a person to look at.
Exit 0 ok, 1 mismatch.
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)


def runs(flags):
    """(points, segments) of a sequence of drawable flags."""
    pts = sum(flags)
    segs = sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))
    return pts, segs


def expect_from_run(run):
    train, sets, order = [], {}, []
    for line in open(os.path.join(run, "metrics.jsonl")):
        if not line.endswith("\n"):
            break
        o = json.loads(line)
        if o["kind"] == "train":
            train.append(o)
        elif o["kind"] == "eval":
            names = []
            for k in o:
                for pre in ("ppl/", "loss/"):
                    if k.startswith(pre) and k[len(pre):] not in names:
                        names.append(k[len(pre):])
            for s in names:
                if s not in sets:
                    sets[s] = []
                    order.append(s)
                v = o.get("ppl/" + s)
                if v is None and isinstance(o.get("loss/" + s), (int, float)):
                    v = math.exp(o["loss/" + s])
                sets[s].append((o["step"], v))
    num = lambda v: isinstance(v, (int, float)) and math.isfinite(v)
    exp = {"train loss": runs([num(o.get("loss")) for o in train]),
           "learning rate": runs([num(o.get("lr")) for o in train])}
    for s in order:
        exp[s] = runs([num(v) for _, v in sets[s]])
        if any(st == 0 and num(v) for st, v in sets[s]):
            exp[s + " base"] = (2, 1)
    return {k: v for k, v in exp.items() if v[0] > 0}


def main(argv):
    svg = argv[1]
    expect, png = {}, None
    i = 2
    while i < len(argv):
        if argv[i] == "--run":
            expect.update(expect_from_run(argv[i + 1]))
        elif argv[i] == "--expect":
            name, counts = argv[i + 1].rsplit("=", 1)
            p, s = counts.split(":")
            expect[name] = (int(p), int(s))
        elif argv[i] == "--png":
            png = argv[i + 1]
        i += 2
    root = ET.parse(svg).getroot()  # raises on malformed XML
    check(root.tag == NS + "svg" and root.get("viewBox"), "root is <svg> with a viewBox")
    paths = {}
    for g in root.iter(NS + "g"):
        rect = g.find(NS + "rect")
        for p in g.iter(NS + "path"):
            name = p.get("data-series")
            check(name not in paths, f"two paths for series {name!r}")
            x0, y0 = float(rect.get("x")), float(rect.get("y"))
            x1, y1 = x0 + float(rect.get("width")), y0 + float(rect.get("height"))
            pts = re.findall(r"([ML])(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)", p.get("d"))
            paths[name] = (len(pts), sum(1 for c, _, _ in pts if c == "M"))
            for _, x, y in pts:
                check(x0 - 0.06 <= float(x) <= x1 + 0.06 and y0 - 0.06 <= float(y) <= y1 + 0.06,
                      f"{name}: point ({x},{y}) outside the plot [{x0},{x1}]x[{y0},{y1}]")
            xs = [float(x) for _, x, _ in pts]
            check(xs == sorted(xs), f"{name}: x not increasing")
    check(sorted(paths) == sorted(expect), f"series {sorted(paths)} != expected {sorted(expect)}")
    for name, want in expect.items():
        check(paths.get(name) == want, f"{name}: (points, subpaths) {paths.get(name)} != {want}")
    if png and shutil.which("rsvg-convert"):
        r = subprocess.run(["rsvg-convert", "-o", png, svg], capture_output=True, text=True)
        check(r.returncode == 0 and os.path.getsize(png) > 1000, f"rsvg-convert: {r.stderr}")
    print(f"svg_oracle: {os.path.basename(svg)}: {len(paths)} series, "
          f"{sum(v[0] for v in paths.values())} points, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
