#!/usr/bin/env python3
"""Adds up the results of the stages of `make test` (or `make check`) and
prints one final line, exactly `N passed, N failed, N skipped`.

    test/summarize.py RESULTS_DIR STAGE...

For each STAGE, RESULTS_DIR holds either STAGE.xml (a CTest run with
--output-junit: every test counts) or STAGE.status (a stage that is one
test, such as the TSan run or the fuzzer: the exit code it wrote). A stage
with neither did not run (its build failed, or make stopped first): it
counts as one failed test, never as nothing. STAGE.time, when present,
is the stage's wall time in seconds (the Makefile writes it); it is shown
on the stage's line and summed. Exit status 1 when anything failed."""

import os
import sys
import xml.etree.ElementTree as ET


def junit_counts(path):
    """(passed, failed, skipped, names of the failed and skipped) from a
    CTest JUnit file. CTest writes status="run" for a pass, "fail" for a
    failure or a timeout, and "notrun" or "disabled" for a test that did
    not run (SKIP_RETURN_CODE, SKIP_REGULAR_EXPRESSION, DISABLED)."""
    root = ET.parse(path).getroot()
    passed = failed = skipped = 0
    failed_names, skipped_names = [], []
    for case in root.iter("testcase"):
        status = case.get("status")
        name = case.get("name")
        if status == "run":
            passed += 1
        elif status in ("notrun", "disabled"):
            skipped += 1
            skipped_names.append(name)
        else:
            failed += 1
            failed_names.append(name)
    return passed, failed, skipped, failed_names, skipped_names


def stage_seconds(path):
    """The whole seconds in a STAGE.time file, or None."""
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    results, stages = sys.argv[1], sys.argv[2:]
    total = [0, 0, 0]
    seconds = 0
    for stage in stages:
        xml = os.path.join(results, stage + ".xml")
        status = os.path.join(results, stage + ".status")
        if os.path.exists(xml):
            try:
                p, f, s, fn, sn = junit_counts(xml)
            except ET.ParseError as e:
                p, f, s, fn, sn = 0, 1, 0, [f"(unreadable {xml}: {e})"], []
        elif os.path.exists(status):
            code = open(status).read().strip()
            ok = code == "0"
            p, f, s = (1, 0, 0) if ok else (0, 1, 0)
            fn, sn = ([] if ok else [f"{stage} (exit {code})"]), []
        else:
            p, f, s, fn, sn = 0, 1, 0, [f"{stage} (the stage did not run: its build or setup failed)"], []
        total[0] += p
        total[1] += f
        total[2] += s
        line = f"  {stage}: {p} passed, {f} failed, {s} skipped"
        took = stage_seconds(os.path.join(results, stage + ".time"))
        if took is not None:
            seconds += took
            line += f" ({took} s)"
        if fn:
            line += "; failed: " + ", ".join(fn)
        if sn:
            line += "; skipped: " + ", ".join(sn)
        print(line)
    if seconds:
        print(f"  wall time of the stages: {seconds // 60} min {seconds % 60} s")
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    sys.exit(1 if total[1] else 0)


if __name__ == "__main__":
    main()
