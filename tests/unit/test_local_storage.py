"""The local storage target writes each copy's parts in a directory of its own: finding a
dead attempt's leftovers never lists the day's directory (every copy of the day)."""

from __future__ import annotations

from pathlib import Path

from worker.storage import HashingReader, LocalStorage
from worker.storage.local import parts_dir


def reader(data: bytes) -> HashingReader:
    half = len(data) // 2
    return HashingReader(iter([data[:half], data[half:]]), expected_size=len(data))


def test_a_copy_leaves_its_file_and_metadata_and_no_part(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    stored = storage.put("p/2026/12/06/a.mp4", reader(b"x" * 1000), "video/mp4")
    day = tmp_path / "p/2026/12/06"
    assert sorted(p.name for p in day.iterdir()) == ["a.mp4", "a.mp4.meta.json"]
    assert stored.size == 1000 and storage.find("p/2026/12/06/a.mp4") is not None


def test_a_dead_attempts_parts_are_dropped_and_no_other_objects(tmp_path: Path,
                                                                monkeypatch) -> None:
    storage = LocalStorage(tmp_path)
    day = tmp_path / "p/2026/12/06"
    for name in ("a.mp4", "b.mp4"):  # two dead attempts, one part each
        parts_dir(day / name).mkdir(parents=True)
        (parts_dir(day / name) / f".{name}.dead.part").write_bytes(b"half")
    listed: list[Path] = []
    real_glob = Path.glob

    def spy(self: Path, pattern: str, *a, **kw):
        listed.append(self)
        return real_glob(self, pattern, *a, **kw)

    monkeypatch.setattr(Path, "glob", spy)
    storage.put("p/2026/12/06/a.mp4", reader(b"y" * 10), "video/mp4")
    assert not parts_dir(day / "a.mp4").exists()  # a's leftovers gone, and its directory
    assert (parts_dir(day / "b.mp4") / ".b.mp4.dead.part").exists()  # b's untouched
    assert day not in listed  # the day's directory was never listed
