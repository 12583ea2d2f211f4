#!/usr/bin/env python3
"""Counts test cases from Meson's testlog.json (doctest and pytest summaries), or totals several counts.

  test_summary.py testlog.json   -> prints "PASSED FAILED SKIPPED" for one test run
  test_summary.py --total FILE   -> sums such lines and prints "N passed, M failed, K skipped";
                                    exits 1 when anything failed or nothing ran.
A test binary that crashed or timed out before printing its doctest summary counts as one failure;
so does a missing or unreadable file (meson test failed before writing its log);
a test that prints no summary (report-check) counts as one test by its result.
A doctest case that cannot run here (no dataset, no command built) returns early after
MESSAGE("skipped: <why>"); doctest counts it as passed, so each such message moves one case from
passed to skipped.
"""
import json, re, sys

SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed \|\s*(\d+) skipped")
# pytest's closing line, e.g. "3 failed, 120 passed, 2 skipped in 41.2s" (the python suite).
SKIPPED = re.compile(r"MESSAGE: skipped: ")  # one per doctest case that returned early
PYTEST = re.compile(r"^=*\s*((?:\d+ (?:passed|failed|skipped|errors?|xfailed|xpassed|warnings?|deselected)(?:, )?)+) in [\d.]+s", re.M)


def pytest_counts(stdout):
    m = PYTEST.findall(stdout)
    if not m:
        return None
    counts = dict((k.rstrip("s") if k.startswith("error") else k, int(v))
                  for v, k in re.findall(r"(\d+) (\w+)", m[-1]))
    return counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0), counts.get("skipped", 0)


def unreadable(path, e):
    print(f"test_summary: cannot read {path} ({e}): counted as one failure", file=sys.stderr)


if sys.argv[1] == "--total":
    p = f = s = 0
    try:
        for line in open(sys.argv[2]):
            a, b, c = map(int, line.split())
            p, f, s = p + a, f + b, s + c
    except (OSError, ValueError) as e:
        unreadable(sys.argv[2], e)
        f += 1
    print(f"{p} passed, {f} failed, {s} skipped")
    sys.exit(1 if f or p == 0 else 0)

passed = failed = skipped = 0
try:
    lines = [json.loads(line) for line in open(sys.argv[1])]
except (OSError, ValueError) as e:  # ValueError: a cut-off line, bytes that are not UTF-8
    unreadable(sys.argv[1], e)
    lines, failed = [], 1
for t in lines:
    m = SUMMARY.findall(t.get("stdout", "") or "")
    py = None if m else pytest_counts(t.get("stdout", "") or "")
    if py:
        a, b, c = py
        passed, failed, skipped = passed + a, failed + b, skipped + c
        if t.get("result") != "OK" and b == 0:
            failed += 1
    elif m:
        _, a, b, c = map(int, m[-1])
        early = min(a, len(SKIPPED.findall(t["stdout"])))
        a, c = a - early, c + early
        passed, failed, skipped = passed + a, failed + b, skipped + c
        if t.get("result") != "OK" and b == 0:
            failed += 1  # e.g. a sanitizer report after the summary
    elif t.get("result") == "OK":  # a check that is one test (report-check): counted by its exit status
        passed += 1
    elif t.get("result") == "SKIP":
        skipped += 1
    else:
        failed += 1
        print(f"test_summary: {t.get('name')} ended {t.get('result')} without a doctest summary", file=sys.stderr)
print(passed, failed, skipped)
