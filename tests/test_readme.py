"""The README's examples run as written, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_episode_example_runs(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"## Playing an episode\n\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(example, "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["0.91", "1.0", "1", "2"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    marker = lines.index("<!-- test-command -->")
    assert lines[marker + 1] == "```bash"
    assert "pytest" in lines[marker + 2]
    assert "<!-- test-command -->" in (ROOT / ".ci" / "run").read_text()
