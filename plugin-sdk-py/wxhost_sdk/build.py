"""``python -m wxhost_sdk.build APP.py [-o OUT.wasm]``: builds a wxhost plugin component from a
Python module defining ``WitWorld = export(handle)``, with componentize-py against the SDK's
copy of the host's WIT world. The module's folder and the SDK are on the component's path;
other pure-Python packages come from ``-p PATH`` folders."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ._bindings import WIT, WORLD, componentize_py

SDK_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wxhost_sdk.build", description=__doc__)
    parser.add_argument("app", type=Path, help="the plugin's module (app.py)")
    parser.add_argument("-o", "--out", type=Path, help="the component to write")
    parser.add_argument(
        "-p", "--path", type=Path, action="append", default=[], help="more module folders"
    )
    args = parser.parse_args(argv)
    app = args.app.resolve()
    if app.suffix != ".py" or not app.is_file():
        parser.error(f"{args.app} is not a Python module")
    out = (args.out or Path(f"{app.stem}.wasm")).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    command = componentize_py("-d", str(WIT), "-w", WORLD, "componentize", app.stem, "-o", str(out))
    for path in [app.parent, SDK_ROOT, *args.path]:
        command += ["-p", str(Path(path).resolve())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        return done.returncode
    print(f"built {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
