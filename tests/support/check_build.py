"""Check a built collection tarball holds no venv, image, cache or scratch files."""

import sys
import tarfile

FORBIDDEN = (".venv/", ".cache/", ".lab/", ".git/", "collections/", "reports/", "__pycache__", ".pytest_cache")


def main(path: str) -> int:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    bad = [n for n in names if any(f in n + "/" for f in FORBIDDEN) or n.endswith((".pyc", ".tar.gz", ".whl"))]
    big = [m.name for m in members if m.size > 2_000_000]
    if bad or big:
        print(f"{path}: unexpected members: {bad[:20]} large: {big[:20]}")
        return 1
    print(f"{path}: {len(names)} members, none of them venv, image or scratch files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
