"""``python -m devstack up|down|status``: the same commands as ``programmes dev``."""

from cli.dev import app

if __name__ == "__main__":
    app(prog_name="python -m devstack")
