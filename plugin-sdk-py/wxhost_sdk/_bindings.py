"""The world's Python bindings (``wit_world``, ``componentize_py_types``): in a component,
componentize-py provides them; natively (tests), they are generated once from the SDK's WIT
by ``componentize-py bindings`` into a folder keyed by the WIT's hash, and put on the path."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

WIT = Path(__file__).resolve().parent.parent / "wit"
WORLD = "plugin-python"


def componentize_py(*args: str) -> list[str]:
    """The command running componentize-py (installed with the SDK) with ``args``."""
    run = "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())"
    return [sys.executable, "-c", run, *args]


def _generate() -> None:
    digest = hashlib.sha256()
    for wit in sorted(WIT.rglob("*.wit")):
        digest.update(wit.relative_to(WIT).as_posix().encode() + b"\0" + wit.read_bytes())
    out = Path(tempfile.gettempdir()) / f"wxhost-py-bindings-{digest.hexdigest()[:16]}"
    if not (out / "wit_world" / "__init__.py").is_file():
        staging = Path(tempfile.mkdtemp(prefix="wxhost-py-bindings-"))
        subprocess.run(
            componentize_py("-d", str(WIT), "-w", WORLD, "bindings", str(staging)),
            check=True,
            capture_output=True,
        )
        try:
            staging.rename(out)
        except OSError:
            pass  # generated meanwhile by another process: use that one
    sys.path.insert(0, str(out))


try:
    import wit_world  # noqa: F401  (in a component)
except ImportError:
    _generate()
