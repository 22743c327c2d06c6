"""`make bench`: every benchmark in turn (each prints its own ratios)."""
import importlib
import sys

SECTIONS = ["ik_speed", "capture_speed", "memory", "dev_eval", "samples_eval", "plausibility", "jitter", "identity", "keying",
            "hard_views", "sdf", "hands", "contact", "batch"]

failed = []
for name in SECTIONS:
    print(f"\n== {name} ==", flush=True)
    try:
        mod = importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        print(f"skipped: {exc}")
        continue
    try:
        mod.main()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(exc.code)
            failed.append(name)
    except Exception as exc:  # noqa: BLE001 - report and go on with the other sections
        print(f"failed: {exc.__class__.__name__}: {exc}")
        failed.append(name)
sys.exit(1 if failed else 0)
