"""File-system primitives: meta-file reading (each problem named), temporary files."""
import os
import re
import stat

import pytest

from comfyui_ld_portrait.dataset.safeio import (MAX_META_BYTES, MetaFileError, create_temporary,
                                                read_meta_file)


def test_meta_file_problems_are_named(tmp_path):
    cases = {"empty.json": (b" \n", "is empty"), "list.json": (b"[1]", "holds a JSON list"),
             "deep.json": (b"[" * 100000 + b"]" * 100000, "is not valid JSON"),
             "other.json": (b'{"id": "x"}', "records the id 'x', not 'other'")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(MetaFileError, match=re.escape(message)):
            read_meta_file(tmp_path / name, name[:-5])
    with open(tmp_path / "huge.json", "wb") as handle:
        handle.truncate(MAX_META_BYTES + 1)  # sparse: no disk used
    with pytest.raises(MetaFileError, match="far larger than a meta file"):
        read_meta_file(tmp_path / "huge.json")
    with pytest.raises(MetaFileError, match="is not a regular file"):
        read_meta_file(os.devnull)
    with pytest.raises(FileNotFoundError):
        read_meta_file(tmp_path / "empty.json" / "below_a_file.json")



def test_temporary_files_are_hidden_private_names_with_the_umask_mode(tmp_path):
    previous = os.umask(0o027)
    try:
        fd, path = create_temporary(tmp_path, ".png")
        os.close(fd)
        fd2, path2 = create_temporary(tmp_path, ".png")
        os.close(fd2)
    finally:
        os.umask(previous)
    assert path != path2 and os.path.basename(path).startswith(".tmp-") and path.endswith(".png")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # 0666 minus the umask, not 0600
