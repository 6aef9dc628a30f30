"""Images and tables a run logs (runbase.log_image, runbase.log_table, TensorBoard image
summaries): real runs under `runbase run` and `runbase.init()`, their `media` rows and
objects read back exactly, the API of a real `runbase ui`, push and pull through a real
team server, gc and fsck, and bundles that lie about their media refused."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    GIT,
    commit,
    documented_keys,
    require,
    runbase_cmd,
    runbase_ui,
    start_server,
    write,
)
from runbase.errors import BundleError
from runbase.records.bundle import export_run, import_run
from runbase.store import Store
from runbase.store.hashing import hash_bytes

PY = sys.executable
COLUMNS = ("kind", "key", "step", "idx", "oid", "mime", "size", "width", "height", "caption")

TRAIN = """
import numpy as np
import pandas as pd
from PIL import Image
import runbase

Image.new("RGB", (7, 5), (0, 0, 255)).save("blue.png")
for step in range(3):
    arr = np.full((4, 6, 3), 40 * step, np.uint8)
    runbase.log_image("arrays", arr, step=step, caption=f"step {step}")
    arr[:] = 255  # the program reuses its buffer at once: what was logged stays
    runbase.log_image("pil", Image.new("L", (3, 2), 10 * step), step=step)
    runbase.log_image("files", "blue.png", step=step)
runbase.log_image(
    "batch",
    [np.zeros((2, 2), np.float32), np.ones((3, 3, 1)), Image.new("RGBA", (4, 4)),
     open("blue.png", "rb").read()],
    step=7,
    caption=["zeros", "ones"],
)
Image.new("RGB", (8, 6), (200, 10, 10)).save("photo.jpg")
runbase.log_image("photo", open("photo.jpg", "rb").read(), step=1)  # JPEG bytes: as they are
runbase.log_image("auto", np.zeros((2, 3), np.uint8))  # no step: 0, then 1
runbase.log_image("auto", np.ones((2, 3), bool))
frame = pd.DataFrame({"x": [1, 2, 3], "y": [0.5, float("nan"), 2.0], "label": ["a", "b", None]})
runbase.log_table("preds", frame, step=2)
frame.loc[0, "x"] = 99  # changed after the call
runbase.log_table("preds", [{"x": 5, "extra": True}, {"x": 6}], step=4)
runbase.log_table("big", {"i": list(range(100_005))}, step=3)
print("done")
"""

LIBRARY = """
import numpy as np
import runbase

run = runbase.init(name="lib")
for step in range(3):
    run.log_image("lib/img", np.full((2, 2), 100 + step, np.uint8), step=step)
raise RuntimeError("boom")  # a crash: what was logged is kept
"""


def media_rows(root: Path, run_id: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(root / ".runbase" / "runbase.db")
    try:
        return conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM media WHERE run_id = ? ORDER BY kind, key, step, idx",
            (run_id,),
        ).fetchall()
    finally:
        conn.close()


def object_bytes(root: Path, oid: str) -> bytes:
    hexd = oid.removeprefix("blake3:")
    data = (root / ".runbase" / "objects" / hexd[:2] / hexd[2:]).read_bytes()
    assert hash_bytes(data) == oid  # the id is the BLAKE3 of the bytes stored
    return data


def pixels(data: bytes) -> tuple[str, tuple[int, int], set[tuple[int, ...]]]:
    """The image's format, size and distinct pixel values (a tuple per pixel)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        flat = np.asarray(img).reshape(-1, len(img.getbands()))
        return str(img.format), img.size, set(map(tuple, flat.tolist()))


def latest(root: Path) -> str:
    out = runbase_cmd("show", "--json", cwd=root, check=True).stdout
    return str(json.loads(out)["id"])


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url: str) -> tuple[int, Any]:
    status, _, body = get(url)
    return status, json.loads(body)


def new_project(root: Path) -> Path:
    root.mkdir(parents=True)
    subprocess.run([*GIT, "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("*.png\n*.jpg\ntb/\n")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project with a `runbase run` that logged images and tables, and a library-mode
    run (`runbase.init()`) that logged images, then died of an exception."""
    root = new_project(tmp_path_factory.mktemp("media") / "proj")
    write(root, "train.py", TRAIN)
    write(root, "lib.py", LIBRARY)
    commit(root, "scripts")
    proc = runbase_cmd("run", "--", PY, "train.py", cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run_id = latest(root)
    lib = subprocess.run(
        [PY, "lib.py"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("RUNBASE_")},
    )
    assert lib.returncode == 1 and "boom" in lib.stderr, lib.stderr
    return {"root": root, "run": run_id, "lib": latest(root), "proc": proc}


# -- what a run records ---------------------------------------------------------------------


def test_rows_and_objects_are_exact(site: dict[str, Any]) -> None:
    root, run_id = site["root"], site["run"]
    assert "done" in site["proc"].stdout
    # the one warning: the table cut at 100,000 rows
    warnings = [ln for ln in site["proc"].stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "'big': 100005 rows" in warnings[0], warnings
    rows = media_rows(root, run_id)
    png, table = "image/png", "application/json"
    blue = (root / "blue.png").read_bytes()
    shape = [(r[0], r[1], r[2], r[3], r[5], r[7], r[8], r[9]) for r in rows]
    assert shape == [
        ("image", "arrays", 0, 0, png, 6, 4, "step 0"),
        ("image", "arrays", 1, 0, png, 6, 4, "step 1"),
        ("image", "arrays", 2, 0, png, 6, 4, "step 2"),
        ("image", "auto", 0, 0, png, 3, 2, None),
        ("image", "auto", 1, 0, png, 3, 2, None),
        ("image", "batch", 7, 0, png, 2, 2, "zeros"),
        ("image", "batch", 7, 1, png, 3, 3, "ones"),
        ("image", "batch", 7, 2, png, 4, 4, None),
        ("image", "batch", 7, 3, png, 7, 5, None),
        ("image", "files", 0, 0, png, 7, 5, None),
        ("image", "files", 1, 0, png, 7, 5, None),
        ("image", "files", 2, 0, png, 7, 5, None),
        ("image", "photo", 1, 0, "image/jpeg", 8, 6, None),
        ("image", "pil", 0, 0, png, 3, 2, None),
        ("image", "pil", 1, 0, png, 3, 2, None),
        ("image", "pil", 2, 0, png, 3, 2, None),
        ("table", "big", 3, 0, table, 1, 100_000, None),
        ("table", "preds", 2, 0, table, 3, 3, None),
        ("table", "preds", 4, 0, table, 2, 2, None),
    ]
    by = {(r[1], r[2], r[3]): r for r in rows}
    for r in rows:
        assert r[6] == len(object_bytes(root, r[4]))  # size
    for step in range(3):  # what the array held when logged, not what it held next
        assert pixels(object_bytes(root, by[("arrays", step, 0)][4])) == (
            "PNG",
            (6, 4),
            {(40 * step,) * 3},
        )
        assert pixels(object_bytes(root, by[("pil", step, 0)][4])) == (
            "PNG",
            (3, 2),
            {(10 * step,)},
        )
        assert object_bytes(root, by[("files", step, 0)][4]) == blue  # kept as it was
    assert pixels(object_bytes(root, by[("batch", 7, 0)][4]))[2] == {(0,)}  # float 0.0
    assert pixels(object_bytes(root, by[("batch", 7, 1)][4]))[2] == {(255,)}  # float 1.0
    assert pixels(object_bytes(root, by[("batch", 7, 2)][4]))[2] == {(0, 0, 0, 0)}  # RGBA
    assert pixels(object_bytes(root, by[("auto", 1, 0)][4]))[2] == {(255,)}  # True
    assert object_bytes(root, by[("batch", 7, 3)][4]) == blue
    assert object_bytes(root, by[("photo", 1, 0)][4]) == (root / "photo.jpg").read_bytes()
    preds = json.loads(object_bytes(root, by[("preds", 2, 0)][4]))
    assert preds == {
        "columns": ["x", "y", "label"],
        "rows": [[1, 0.5, "a"], [2, None, "b"], [3, 2.0, None]],
        "total_rows": 3,
        "truncated": False,
    }
    assert json.loads(object_bytes(root, by[("preds", 4, 0)][4]))["rows"] == [
        [5, True],
        [6, None],
    ]
    big = json.loads(object_bytes(root, by[("big", 3, 0)][4]))
    assert big["truncated"] is True and big["total_rows"] == 100_005
    assert big["rows"][:2] == [[0], [1]] and len(big["rows"]) == 100_000


def test_library_mode_run_keeps_what_it_logged_before_crashing(site: dict[str, Any]) -> None:
    root, lib = site["root"], site["lib"]
    rec = json.loads(runbase_cmd("show", lib, "--json", cwd=root, check=True).stdout)
    assert rec["mode"] == "api" and rec["status"] == "failed", rec["status"]
    rows = media_rows(root, lib)
    assert [(r[1], r[2], r[7], r[8]) for r in rows] == [("lib/img", s, 2, 2) for s in range(3)]
    for step, r in enumerate(rows):
        assert pixels(object_bytes(root, r[4]))[2] == {(100 + step,)}


# -- the API of `runbase ui` ----------------------------------------------------------------


@pytest.fixture(scope="module")
def ui(site: dict[str, Any]) -> Iterator[str]:
    with runbase_ui(site["root"]) as url:
        yield url + "/api"


def test_media_listing(site: dict[str, Any], ui: str) -> None:
    run_id = site["run"]
    status, body = get_json(f"{ui}/runs/{run_id}/media")
    assert status == 200 and body["run"] == run_id and "items" not in body
    keys = {(k["kind"], k["key"]): k for k in body["keys"]}
    assert list(keys) == sorted(keys)
    assert keys[("image", "arrays")] == {
        "kind": "image", "key": "arrays", "count": 3, "steps": [0, 1, 2],
        "steps_truncated": False, "width": 6, "height": 4,
    }  # fmt: skip
    assert keys[("image", "batch")]["count"] == 4 and keys[("image", "batch")]["steps"] == [7]
    assert keys[("table", "preds")]["steps"] == [2, 4]
    status, body = get_json(f"{ui}/runs/{run_id}/media?kind=table")
    assert {k["kind"] for k in body["keys"]} == {"table"}

    status, body = get_json(f"{ui}/runs/{run_id}/media?key=arrays")
    items = body["items"]
    assert [(i["step"], i["idx"], i["caption"]) for i in items] == [
        (0, 0, "step 0"),
        (1, 0, "step 1"),
        (2, 0, "step 2"),
    ]
    assert body["truncated"] is False
    rows = {(r[1], r[2], r[3]): r for r in media_rows(site["root"], run_id)}
    for item in items:
        r = rows[("arrays", item["step"], item["idx"])]
        assert (item["oid"], item["mime"], item["size"], item["width"], item["height"]) == (
            r[4], r[5], r[6], r[7], r[8],
        )  # fmt: skip
        assert item["url"] == f"runs/{run_id}/media/object/{r[4]}"
        assert item["time"].endswith("+00:00")
        # the object route: the bytes, as the row's media type, never sniffed or run
        status, headers, data = get(f"{ui}/{item['url']}")
        assert status == 200 and data == object_bytes(site["root"], r[4])
        assert headers["content-type"] == "image/png"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-security-policy"] == "default-src 'none'"
        assert "immutable" in headers["cache-control"]


def test_a_key_of_many_steps_lists_its_last_steps(tmp_path: Path) -> None:
    """A key logged at more steps than a listing holds: counted in SQL, its last 10,000
    steps listed and ``steps_truncated`` set (every step of a million-step key was a
    million-element list on every workspace load)."""
    from runbase.records.media import MAX_KEY_STEPS, media_keys

    store = Store.open(tmp_path / ".runbase", create=True)
    try:
        n = MAX_KEY_STEPS + 5
        rows = [("image", "many", s, 0, 3, 4) for s in range(n)]
        rows.append(("image", "many", n - 1, 1, 9, 9))  # the last step's second image
        rows += [("table", "few", s, 0, 2, 7) for s in (5, 1, 3)]
        with store.db.transaction() as cur:
            cur.executemany(
                "INSERT INTO media (run_id, kind, key, step, idx, oid, mime, size, width, "
                "height, caption, time) VALUES ('r', ?, ?, ?, ?, ?, 'image/png', 1, ?, ?, "
                "NULL, 1.0)",
                [(k, key, s, i, "blake3:" + "0" * 64, w, h) for k, key, s, i, w, h in rows],
            )
        many, few = media_keys(store, "r")
        assert many["key"] == "many" and many["count"] == n + 1
        assert many["steps"] == list(range(5, n)) and many["steps_truncated"] is True
        assert (many["width"], many["height"]) == (3, 4)  # the last step's first image
        assert few == {"kind": "table", "key": "few", "count": 3, "steps": [1, 3, 5],
                       "steps_truncated": False, "width": 2, "height": 7}  # fmt: skip
        assert media_keys(store, "r", "table") == [few]
        assert media_keys(store, "r", max_steps=2)[1]["steps"] == [3, 5]
    finally:
        store.close()


def test_object_route_serves_only_this_runs_media(site: dict[str, Any], ui: str) -> None:
    run_id, lib = site["run"], site["lib"]
    _, body = get_json(f"{ui}/runs/{lib}/media?key=lib/img")
    other = body["items"][0]["oid"]  # an object of the other run
    status, err = get_json(f"{ui}/runs/{run_id}/media/object/{other}")
    assert status == 404 and run_id in err["detail"]
    status, _, data = get(f"{ui}/runs/{lib}/media/object/{other}")
    assert status == 200
    # an object this run has that is no media (its code snapshot's tree): not served here
    tree = json.loads(runbase_cmd("show", run_id, "--json", cwd=site["root"]).stdout)["code"]
    status, _ = get_json(f"{ui}/runs/{run_id}/media/object/{tree['tree']}")
    assert status == 404
    for bad in ("nonsense", "blake3:" + "0" * 64, "blake3:..%2F..%2Fx"):
        assert get(f"{ui}/runs/{run_id}/media/object/{bad}")[0] == 404
    assert get(f"{ui}/runs/no-such-run/media")[0] == 404
    assert get(f"{ui}/runs/{run_id}/media?kind=video")[0] == 422


def test_table_route(site: dict[str, Any], ui: str) -> None:
    run_id = site["run"]
    status, body = get_json(f"{ui}/runs/{run_id}/media/table?key=preds")
    assert status == 200
    assert body == {
        "run": run_id,
        "key": "preds",
        "step": 4,  # the last step
        "steps": [2, 4],
        "columns": ["x", "extra"],
        "rows": [[5, True], [6, None]],
        "total_rows": 2,
        "truncated": False,
    }
    _, body = get_json(f"{ui}/runs/{run_id}/media/table?key=preds&step=2")
    assert body["columns"] == ["x", "y", "label"] and body["rows"][0] == [1, 0.5, "a"]
    _, big = get_json(f"{ui}/runs/{run_id}/media/table?key=big")
    assert len(big["rows"]) == 10_000 and big["rows"][-1] == [9999]
    assert big["total_rows"] == 100_005 and big["truncated"] is True
    status, err = get_json(f"{ui}/runs/{run_id}/media/table?key=preds&step=3")
    assert status == 404 and "step 3" in err["detail"]
    status, err = get_json(f"{ui}/runs/{run_id}/media/table?key=arrays")  # an image key
    assert status == 404 and "no table" in err["detail"]
    assert get(f"{ui}/runs/{run_id}/media/table")[0] == 422  # key is required


# -- files and bytes: what their first bytes say -----------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime", "options"),
    [
        ("PNG", "image/png", {}),
        ("JPEG", "image/jpeg", {}),
        ("JPEG", "image/jpeg", {"progressive": True}),
        ("GIF", "image/gif", {}),
        ("WEBP", "image/webp", {}),  # lossy: VP8
        ("WEBP", "image/webp", {"lossless": True}),  # VP8L
        ("WEBP", "image/webp", {"exif": b"Exif\x00\x00"}),  # extended: VP8X
    ],
)
def test_sniff_reads_the_size_from_the_header(fmt: str, mime: str, options: dict[str, Any]) -> None:
    from PIL import Image

    from runbase.tracking.media import sniff

    for size in [(1, 1), (7, 3), (300, 17), (4000, 2001)]:
        buf = io.BytesIO()
        Image.new("RGB", size, (9, 99, 199)).save(buf, fmt, **options)
        data = buf.getvalue()
        assert sniff(data) == (mime, *size), (fmt, options, size)
        assert sniff(data[:9]) is None  # a header cut short says nothing
    for junk in [b"", b"hello", b"\x89PNG\r\n\x1a\n", b"GIF89", b"RIFF0000WEBPVP8Z", b"<svg/>"]:
        assert sniff(junk) is None


def test_docs_name_every_parameter_and_key(site: dict[str, Any], ui: str) -> None:
    run_id = site["run"]
    _, listing = get_json(f"{ui}/runs/{run_id}/media?key=arrays")
    _, table = get_json(f"{ui}/runs/{run_id}/media/table?key=preds")
    _, spec = get_json(ui.removesuffix("/api") + "/openapi.json")
    params = {
        p["name"]
        for path in ("/api/runs/{ref}/media", "/api/runs/{ref}/media/table")
        for p in spec["paths"][path]["get"]["parameters"]
        if p["in"] == "query"
    }
    listing_doc = "GET /api/runs/{run}/media"
    documented = documented_keys("api.md", listing_doc) | documented_keys(
        "api.md", "GET /api/runs/{run}/media/table?key=K[&step=S]"
    )
    assert documented == params | set(listing) | set(table)
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    section = text.split(f"## `{listing_doc}`", 1)[1].split("\n## ", 1)[0]
    for name in [*listing["keys"][0], *listing["items"][0]]:  # the items' keys, in the text
        assert name in section, name


# -- bad input never breaks the run -----------------------------------------------------------


FORK = """
import os, signal, sys, threading, time
import numpy as np
import runbase
from runbase.tracking import media

runbase.log_image("parent", np.zeros((2, 2), np.uint8), step=0)  # the writer thread runs
while media._writer.pending:  # stored: no module half imported by it at the fork
    time.sleep(0.01)
held, release = threading.Event(), threading.Event()


def hold():  # another thread of the parent is logging at the moment of the fork
    with media._writer_lock, media._steps_lock:
        held.set()
        release.wait()


t = threading.Thread(target=hold)
t.start()
held.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a child stuck on a lock dies of SIGALRM, not hangs the test
    runbase.log_image("child", np.ones((2, 2), np.uint8), step=0)
    sys.exit(0)
release.set()
t.join()
print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_forked_child_logs_images_while_the_parent_held_the_locks(project: Path) -> None:
    """The media module's locks and writer are fresh in a forked child: a lock another
    thread held at the fork would otherwise stay held there forever."""
    write(project, "fork.py", FORK)
    proc = runbase_cmd("run", "--", PY, "fork.py", cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "child exit 0" in proc.stdout, (proc.stdout, proc.stderr)
    keys = {r[1] for r in media_rows(project, latest(project))}
    assert keys == {"parent", "child"}


def test_bad_images_are_one_warning_each_and_the_run_finishes(project: Path) -> None:
    write(
        project,
        "bad.py",
        """
        import sys
        import numpy as np
        import runbase

        open("fake.png", "w").write("not an image at all")
        for step in range(3):  # each problem is said once, however often it happens
            runbase.log_image("huge", np.zeros((8000, 8000), np.uint8), step=step)
            runbase.log_image("fake", "fake.png", step=step)
            runbase.log_image("junk", {"not": "an image"}, step=step)
            runbase.log_image("shape", np.zeros((2, 3, 5, 7)), step=step)
            runbase.log_image("ok", np.zeros((2, 2), np.uint8), step=step)
        runbase.log_image("missing", "no-such-file.png")
        runbase.log_table("table", 42)
        print("trained on")
        """,
    )
    write(
        project,
        "nopil.py",
        """
        import sys
        sys.modules["PIL"] = None  # Pillow not installed: arrays cannot be encoded
        import numpy as np
        import runbase

        for step in range(2):
            runbase.log_image("nopil", np.zeros((2, 2), np.uint8), step=step)
        gif = b"GIF89a" + bytes([3, 0, 2, 0]) + bytes(10)  # a 3 x 2 GIF's header
        runbase.log_image("nopil-file", gif)  # bytes need no Pillow
        """,
    )
    proc = runbase_cmd("run", "--", PY, "bad.py", cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "trained on" in proc.stdout
    warnings = [ln for ln in proc.stderr.splitlines() if "runbase: warning" in ln]
    said = {
        "huge": "8000 x 8000 pixels is over the limit of 50 megapixels",
        "fake": "fake.png is not a PNG, JPEG, GIF or WebP image",
        "junk": "a value of type dict is not an image",
        "shape": "of shape (2, 3, 5, 7) is not an image",
        "missing": "cannot read no-such-file.png",
        "table": "a value of type int is not a table",
    }
    for key, text in said.items():
        mine = [w for w in warnings if f"'{key}'" in w]
        assert len(mine) == 1 and text in mine[0], (key, warnings)
    assert len(warnings) == len(said), warnings
    rows = media_rows(project, latest(project))
    assert [(r[1], r[2], r[5], r[7], r[8]) for r in rows] == [
        ("ok", 0, "image/png", 2, 2),
        ("ok", 1, "image/png", 2, 2),
        ("ok", 2, "image/png", 2, 2),
    ]

    proc = runbase_cmd("run", "--", PY, "nopil.py", cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "runbase: warning" in ln]
    assert len(warnings) == 1 and "needs Pillow (pip install 'runbase[media]')" in warnings[0]
    rows = media_rows(project, latest(project))
    assert [(r[1], r[2], r[5], r[7], r[8]) for r in rows] == [("nopil-file", 0, "image/gif", 3, 2)]


# -- TensorBoard's images ----------------------------------------------------------------------


def test_tensorboard_images_are_mirrored(project: Path) -> None:
    write(
        project,
        "tb.py",
        """
        import torch
        from torch.utils.tensorboard import SummaryWriter
        import runbase

        w = SummaryWriter("tb")
        for step in range(3):
            w.add_image("samples", torch.full((3, 4, 5), step / 4), step)  # C x H x W
        w.add_image("hwc", torch.zeros(6, 2, 3, dtype=torch.uint8), 9, dataformats="HWC")
        w.add_images("batch", torch.rand(4, 1, 3, 2), 5)  # N x C x H x W
        w.add_scalar("loss", 0.5, 0)
        w.close()
        runbase.log_image("tensor", torch.ones(3, 2, 8))  # a tensor given directly: C x H x W
        """,
    )
    proc = runbase_cmd("run", "--", PY, "tb.py", cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr
    rows = media_rows(project, latest(project))
    assert [(r[1], r[2], r[3], r[5], r[7], r[8]) for r in rows] == [
        ("batch", 5, 0, "image/png", 2, 3),
        ("batch", 5, 1, "image/png", 2, 3),
        ("batch", 5, 2, "image/png", 2, 3),
        ("batch", 5, 3, "image/png", 2, 3),
        ("hwc", 9, 0, "image/png", 2, 6),
        ("samples", 0, 0, "image/png", 5, 4),
        ("samples", 1, 0, "image/png", 5, 4),
        ("samples", 2, 0, "image/png", 5, 4),
        ("tensor", 0, 0, "image/png", 8, 2),
    ]
    by = {(r[1], r[2]): r for r in rows}
    for step in range(3):  # TensorBoard's scaling: floats in [0, 1] times 255
        value = round(step / 4 * 255)
        assert pixels(object_bytes(project, by[("samples", step)][4]))[2] == {(value,) * 3}
    assert pixels(object_bytes(project, by[("tensor", 0)][4]))[2] == {(255,) * 3}
    # TensorBoard's own files are as without runbase
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(project / "tb"))
    acc.Reload()
    assert {"samples", "hwc"} <= set(acc.Tags()["images"])
    assert [e.step for e in acc.Images("samples")] == [0, 1, 2]


def test_tf_summary_image_is_mirrored(project: Path) -> None:
    require("tensorflow")
    write(
        project,
        "tf_images.py",
        """
        import tensorflow as tf

        writer = tf.summary.create_file_writer("tb")
        with writer.as_default():
            for step in range(2):
                batch = tf.fill((5, 3, 4, 3), 0.5)  # 5 images; TensorBoard keeps 2
                tf.summary.image("pics", batch, step=step, max_outputs=2)
                with tf.name_scope("val"):
                    tf.summary.image("gray", tf.zeros((1, 2, 2, 1), tf.uint8), step=step)
        tf.summary.image("unwritten", tf.zeros((1, 2, 2, 1)), step=0)  # no writer: nothing
        writer.flush()
        """,
    )
    proc = runbase_cmd("run", "--", PY, "tf_images.py", cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = media_rows(project, latest(project))
    assert [(r[1], r[2], r[3], r[7], r[8]) for r in rows] == [
        ("pics", 0, 0, 4, 3),
        ("pics", 0, 1, 4, 3),
        ("pics", 1, 0, 4, 3),
        ("pics", 1, 1, 4, 3),
        ("val/gray", 0, 0, 2, 2),
        ("val/gray", 1, 0, 2, 2),
    ]


# -- gc keeps them, fsck checks them -------------------------------------------------------------


def test_gc_keeps_media_and_fsck_reports_a_damaged_one(project: Path) -> None:
    write(
        project,
        "few.py",
        """
        import numpy as np
        import runbase

        runbase.log_image("img", [np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)])
        runbase.log_table("tbl", [{"a": 1}])
        """,
    )
    proc = runbase_cmd("run", "--", PY, "few.py", cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run_id = latest(project)
    oids = [r[4] for r in media_rows(project, run_id)]
    assert len(oids) == 3
    store = Store.open(project / ".runbase")
    try:
        stray = store.objects.put_bytes(b"referred to by no run")
        objects = store.local_objects
    finally:
        store.close()
    old = time.time() - 7200  # past gc's grace period (it keeps young objects)
    for oid in [*store_objects(project), stray]:
        os.utime(objects.path(oid), (old, old))
    out = runbase_cmd("gc", "--yes", cwd=project, check=True)
    assert not objects.exists(stray), out.stdout
    for oid in oids:
        assert objects.exists(oid)
        object_bytes(project, oid)

    damaged = objects.path(oids[1])
    damaged.chmod(0o644)
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    fsck = runbase_cmd("fsck", cwd=project)
    assert fsck.returncode == 1
    assert f"corrupt: {oids[1]}" in fsck.stderr
    assert f"missing: {oids[1]} (media of run {run_id})" in fsck.stderr
    for oid in (oids[0], oids[2]):
        assert oid not in fsck.stderr


def store_objects(root: Path) -> list[str]:
    store = Store.open(root / ".runbase")
    try:
        return list(store.objects)
    finally:
        store.close()


# -- bundles: push and pull keep them; a lying bundle is refused -----------------------------------


def test_bundle_round_trip_and_bad_media_rows_refused(site: dict[str, Any], tmp_path: Path) -> None:
    src = Store.open(site["root"] / ".runbase")
    dst = Store.open(tmp_path / "copy" / ".runbase", create=True)
    try:
        bundle = json.loads(json.dumps(export_run(src, site["run"]), allow_nan=False))
        assert set(bundle["objects"].values()) >= {"media", "code"}
        media = {r["oid"] for r in bundle["media"]}
        assert {o for o, k in bundle["objects"].items() if k == "media"} == media
        for oid in bundle["objects"]:
            dst.objects.put_claimed(oid, src.objects.get_bytes(oid))
        import_run(dst, bundle)
        copy = dst.db.query(
            "SELECT kind, key, step, idx, oid, mime, size, width, height, caption, time "
            "FROM media ORDER BY kind, key, step, idx"
        )
        assert [tuple(r[:10]) for r in copy] == media_rows(site["root"], site["run"])
        # a bundle of an older runbase has no media table: the run then has none
        older = {k: v for k, v in bundle.items() if k != "media"}
        import_run(dst, older)
        assert dst.db.query("SELECT count(*) FROM media")[0][0] == 0
        for column, value, said in [
            ("mime", "text/html", "media[0].mime"),
            ("kind", "video", "media[0].kind"),
            ("oid", "../../etc/passwd", "media[0].oid"),
            ("key", "", "media[0].key"),
            ("width", -1, "media[0].width"),
            ("caption", "x" * 5000, "media[0].caption"),
        ]:
            bad = json.loads(json.dumps(bundle))
            bad["media"][0][column] = value
            with pytest.raises(BundleError) as e:
                import_run(dst, bad)
            assert said in str(e.value), (column, str(e.value))
    finally:
        src.close()
        dst.close()


def test_a_media_row_is_checked_by_its_declared_shapes() -> None:
    """Ingest (a spooled entry) and bundle import check a media row by the one
    declaration of its columns, core.shapes.COLUMNS["media"]: text no store can hold is
    refused in a key or a caption, whoever wrote the spool."""
    from runbase.core.shapes import COLUMNS as SHAPES
    from runbase.records.media import row_problem

    good = {"kind": "image", "key": "k", "step": 3, "idx": 0, "mime": "image/png",
            "oid": "blake3:" + "0" * 64, "size": 5, "width": None, "height": 2,
            "caption": None, "time": 1.5}  # fmt: skip
    assert set(SHAPES["media"]) == set(good)
    assert row_problem(good) is None
    for column, value, said in [
        ("key", "", "key: must be 1 to 4096 characters"),
        ("key", "a\ud800", "key: is not valid Unicode"),
        ("caption", "a\x00b", "caption: contains a NUL character"),
        ("caption", "x" * 4097, "caption: must be a string of at most 4096"),
        ("step", 1 << 63, "step: must be an integer"),
        ("step", None, "step: must not be null"),
        ("width", -1, "width: must be an integer from 0"),
        ("size", True, "size: must be an integer"),
        ("time", float("nan"), "time: must be a time"),
        ("kind", "video", "kind: must be one of"),
        ("oid", "../x", "oid: must be an object id"),
        ("mime", "text/html", "mime: 'text/html' is not one of image/png"),
    ]:
        problem = row_problem({**good, column: value})
        assert problem is not None and problem.startswith(said), (column, problem)


def _token(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout.strip().splitlines()[-1]


def test_push_and_pull_keep_the_media(site: dict[str, Any], tmp_path: Path) -> None:
    require("uvicorn")
    srv = tmp_path / "srv"
    srv.mkdir()
    db, objects = str(srv / "server.db"), str(srv / "objects")
    runbase_cmd("server", "migrate", "--db", db, "--objects", objects, check=True)
    token = _token(runbase_cmd("server", "users", "add", "alice", "--role", "admin", "--db", db,
                               check=True))  # fmt: skip
    server = start_server(db, objects, log_dir=srv)
    try:
        env = {"RUNBASE_CONFIG": str(tmp_path / "config.json")}
        root, run_id = site["root"], site["run"]
        runbase_cmd("login", server.url, "--token", token, cwd=root, env=env, check=True)
        runbase_cmd("remote", "add", "team", server.url, cwd=root, env=env, check=True)
        runbase_cmd("push", run_id, cwd=root, env=env, check=True)

        # the server serves them (its media routes are the UI's, per project)
        api = f"{server.url}/p/default/api/runs/{run_id}"
        auth = {"Authorization": f"Bearer {token}"}
        req = urllib.request.Request(f"{api}/media?key=files", headers=auth)
        with urllib.request.urlopen(req, timeout=30) as r:
            items = json.load(r)["items"]
        assert [i["step"] for i in items] == [0, 1, 2]
        req = urllib.request.Request(f"{server.url}/p/default/api/{items[0]['url']}", headers=auth)
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.read() == (root / "blue.png").read_bytes()
            assert r.headers["Content-Security-Policy"] == "default-src 'none'"

        # another machine pulls the run: its media rows and objects come with it
        other = new_project(tmp_path / "other")
        write(other, "README.md", "other\n")
        commit(other, "other")
        runbase_cmd("pull", f"team:{run_id}", cwd=other, env=env, check=True)
        assert media_rows(other, run_id) == media_rows(root, run_id)
        for row in media_rows(other, run_id):
            object_bytes(other, row[4])
    finally:
        server.stop()
