"""Make JupyterLab open the chapters' `.py` files as notebooks (through jupytext) by default.

Writes `share/jupyter/lab/settings/overrides.json` inside the given environment (default: the running
Python's prefix). `make lab` calls it before starting JupyterLab.
"""
import json
import sys
from pathlib import Path

prefix = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.prefix)
path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
path.parent.mkdir(parents=True, exist_ok=True)
settings = json.loads(path.read_text()) if path.exists() else {}
viewers = settings.setdefault("@jupyterlab/docmanager-extension:plugin", {}).setdefault("defaultViewers", {})
viewers["python"] = "Jupytext Notebook"
path.write_text(json.dumps(settings, indent=2))
print(f"JupyterLab will open .py chapters as notebooks ({path})")
