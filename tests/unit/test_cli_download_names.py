"""`backdrop download` writes every file (issue 26, point 7): names the file system cannot hold
(NAME_MAX is 255 *bytes*; the API accepts 255 characters) are shortened, keeping the image id,
variant and extension, and reported."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from frontend import cli


class FakeClient:
    """Only what `_download` calls: the job's succeeded images and the bytes behind a URL."""

    def __init__(self, images: list[dict[str, Any]]) -> None:
        self.images = images

    def job_images(self, job_id: str, status: str | None = None) -> list[dict[str, Any]]:
        return self.images

    def download(self, url: str) -> bytes:
        return url.encode()


def _image(name: str, image_id: str, variants: int = 1) -> dict[str, Any]:
    outputs = [
        {"variant": v, "key": f"results/{image_id}-{v}.jpg", "url": f"https://s3/{image_id}/{v}"}
        for v in range(1, variants + 1)
    ]
    return {"name": name, "imageId": image_id, "status": "SUCCEEDED", "outputs": outputs, "deliveredVariant": 1}


def test_every_file_is_written_when_names_are_250_characters_or_multibyte(tmp_path: Path) -> None:
    long_ascii = "a" * 246 + ".jpg"  # 250 characters: what the API accepts
    long_multibyte = "é" * 200 + ".png"  # 204 characters, 404 bytes in UTF-8
    same_start = "a" * 246 + "-other.jpg"  # differs only past the point where it is cut
    images = [
        _image(long_ascii, "1" * 32, variants=2),
        _image(long_multibyte, "2" * 32),
        _image(same_start, "3" * 32),
        _image("short.jpg", "4" * 32),
    ]
    view = {"jobId": "20261207T230000Z-abcdefabcdef", "reports": {"csv": "https://s3/report"}}
    done = cli._download(FakeClient(images), view, tmp_path / "out", all_variants=True)  # type: ignore[arg-type]
    files = sorted(Path(p).name for p in done.written)
    assert len(files) == len(set(files)) == 6  # 5 results and the report, no collision
    for path in done.written:
        assert Path(path).read_bytes().startswith(b"https://s3/")  # really written
        assert len(os.fsencode(Path(path).name)) <= 255
    assert any(f.endswith("-11111111-1.jpg") for f in files) and any(f.endswith("-11111111-2.jpg") for f in files)
    multibyte = next(f for f in files if f.endswith("-22222222-1.jpg"))
    assert multibyte.startswith("é" * 100) and "\ufffd" not in multibyte  # whole characters only
    assert "short-44444444-1.jpg" in files  # a name that fits is unchanged
    renamed = {item["name"] for item in done.renamed}
    assert renamed == {long_ascii, long_multibyte, same_start}
    text = cli._renamed_text(done.renamed)
    assert len(done.renamed) == 4  # one line per file: the first image has two variants
    assert "4 file name(s) were too long" in text and "short.jpg" not in text


def test_names_whose_shortened_forms_meet_stay_distinct(tmp_path: Path) -> None:
    # two images whose ids share their first 8 characters and whose names differ only at the end
    images = [_image("b" * 250 + "1.jpg", "abcdef12" + "0" * 24), _image("b" * 250 + "2.jpg", "abcdef12" + "f" * 24)]
    done = cli._download(FakeClient(images), {"jobId": "j"}, tmp_path, all_variants=False)  # type: ignore[arg-type]
    names = [Path(p).name for p in done.written]
    assert len(set(names)) == 2 and all(Path(p).is_file() for p in done.written)
    assert all(len(os.fsencode(n)) <= 255 for n in names)
