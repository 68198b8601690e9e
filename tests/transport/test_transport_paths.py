"""Names from remote metadata never become paths outside the repository (file://)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_exc

from repotool.transport.fetcher import Fetcher


@pytest.mark.parametrize("name", ["..%2Foutside.json", "%2E%2E%2Foutside.json", "..%2F..%2Fx"])
def test_path_traversal_through_encoded_role_name_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "repo" / "metadata").mkdir(parents=True)
    (tmp_path / "repo" / "outside.json").write_text("secret")
    url = (tmp_path / "repo" / "metadata").as_uri() + "/" + name
    with pytest.raises(tuf_exc.DownloadHTTPError):
        Fetcher().download_bytes(url, 1000)


def test_plain_file_url_still_served(tmp_path: Path) -> None:
    (tmp_path / "a b.json").write_text("ok")
    assert Fetcher().download_bytes((tmp_path / "a b.json").as_uri(), 10) == b"ok"
