"""The README documents every setting an operator can set."""

from pathlib import Path

from config.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme():
    missing = [name.upper() for name in Settings.__dataclass_fields__
               if f"`{name.upper()}" not in README and f"/ `{name.upper()}" not in README]
    assert missing == []
