"""Where the package finds the files it ships: ``properties/``.

Its own module because both ``config`` (the YAML layers) and ``settings`` (the keys those YAMLs
name) need it, and ``config`` imports ``settings``: here neither has to import the other's way.
"""

from __future__ import annotations

from pathlib import Path


def properties_dir() -> Path:
    """The ``properties/`` folder, in an installed wheel or in a source checkout.

    A wheel maps the top-level ``properties/`` into the package (see pyproject.toml); an editable
    install or a plain checkout finds it beside the package.
    """
    packaged = Path(__file__).resolve().parent / "properties"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "properties"
