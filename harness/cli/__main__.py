"""``python -m harness.cli``: the same as ``tdc-harness``."""

from harness.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
