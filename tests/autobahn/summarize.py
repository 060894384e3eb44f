"""Summarise an Autobahn-format report folder (index.json + one JSON per case).

Usage: python summarize.py REPORT_DIR

Prints how many cases ended OK, NON-STRICT, INFORMATIONAL and FAILED, then
one line per case that is not plainly OK, with the report's reasons. Exits 1
when any case is neither OK nor INFORMATIONAL (NON-STRICT and FAILED, by its
message verdict or its closing verdict, included) or when the report holds no
case.
"""

import json
import os
import sys
from collections import Counter

# Closing-handshake verdicts that mean the case failed.
BAD_CLOSE = {"FAILED", "FAILED BY CLIENT", "UNCLEAN", "WRONG CODE"}
# Message verdicts that mean the case failed.
BAD = {"FAILED", "ERROR", "UNIMPLEMENTED"}
ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED"]
# Verdicts a run may have and still pass. INFORMATIONAL cases are those where
# the spec leaves the behaviour open (each is explained in README.md).
ALLOWED = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    return [int(p) if p.isdigit() else p for p in case_id.split(".")]


def verdict(entry):
    behavior, close = entry["behavior"], entry["behaviorClose"]
    if behavior in BAD or close in BAD_CLOSE:
        return "FAILED"
    if behavior == "OK" and close == "INFORMATIONAL":
        return "INFORMATIONAL"
    return behavior


def main(report_dir):
    with open(os.path.join(report_dir, "index.json")) as f:
        index = json.load(f)
    counts = Counter()
    notes = []
    for agent in sorted(index):
        cases = index[agent]
        for case_id in sorted(cases, key=case_key):
            entry = cases[case_id]
            v = verdict(entry)
            counts[v] += 1
            if v == "OK" and entry["behaviorClose"] == "OK":
                continue
            with open(os.path.join(report_dir, entry["reportfile"])) as f:
                case = json.load(f)
            code = case.get("remoteCloseCode")
            notes.append(
                f"  {v:<13} {case_id:<8} behavior={entry['behavior']} "
                f"close={entry['behaviorClose']} server-close-code="
                f"{code if code is not None else 'none'}\n"
                f"                {case.get('result', '')} / {case.get('resultClose', '')}\n"
                f"                case: {strip(case.get('description', ''))}"
            )
    total = sum(counts.values())
    print(f"Autobahn: {total} cases")
    for name in ORDER + sorted(set(counts) - set(ORDER)):
        print(f"  {name:<13} {counts.get(name, 0)}")
    if notes:
        print("Cases that are not plainly OK:")
        print("\n".join(notes))
    if total == 0:
        print("autobahn: FAIL: the report holds no case", file=sys.stderr)
        return 1
    bad = sum(n for name, n in counts.items() if name not in ALLOWED)
    if bad:
        print(
            f"autobahn: FAIL: {bad} case(s) neither OK nor INFORMATIONAL",
            file=sys.stderr,
        )
        return 1
    return 0


def strip(html):
    """The case description without markup, on one line, cut short."""
    out, inside = [], False
    for ch in html:
        if ch == "<":
            inside = True
        elif ch == ">":
            inside = False
            out.append(" ")
        elif not inside:
            out.append(ch)
    text = " ".join("".join(out).split())
    return text if len(text) <= 140 else text[:137] + "..."


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
