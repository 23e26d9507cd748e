"""Runs every journey_*.py beside this file, in name order, each with run(h) on one Harness.
Exits non-zero when any journey fails (a screenshot of the page it failed on is kept in the
temp dir printed)."""

import glob
import importlib.util
import os
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import Harness  # noqa: E402


def main():
    only = sys.argv[1:]
    journeys = sorted(glob.glob(os.path.join(HERE, "journey_*.py")))
    if only:
        journeys = [j for j in journeys if any(o in os.path.basename(j) for o in only)]
    h = Harness()
    failed = []
    try:
        for path in journeys:
            name = os.path.basename(path)[:-3]
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
                module.run(h)
                print(f"{name}: OK", flush=True)
            except Exception:
                failed.append(name)
                shot = os.path.join(tempfile.gettempdir(), f"{name}-failure.png")
                try:
                    h.driver.save_screenshot(shot)
                except Exception:
                    shot = "(no screenshot)"
                print(f"{name}: FAILED on {h.driver.current_url} ({shot})", flush=True)
                traceback.print_exc()
    finally:
        h.close()
    print(f"browser journeys: {len(journeys) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
