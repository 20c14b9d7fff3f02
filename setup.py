"""Build step of the wheel; every other setting is in pyproject.toml.

templates/, playbooks/, roles/, ansible.cfg and the sample inventory/ stay at the repository's top
level, where people and Ansible expect them. A wheel must carry them too, or a pip/pipx install
has no templates: build_py copies them into the built package as dzops/_data/, where
dzops.resources finds them. An editable install reads the checkout itself, so it copies nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("templates", "playbooks", "roles", "ansible.cfg", "inventory")  # as in dzops/resources.py
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.py[co]", ".git", ".gitignore", "*.retry", ".molecule")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "dzops" / "_data"
        for name in SHIPPED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=LEFT_OUT, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildPyWithData})
