#!/usr/bin/python3
"""A synthetic catalog of N assets for lumen serve's benchmarks (issue 19).

Starts from a real catalog SEED (lumen index of a few real photos with a model: its schema, its
thumbnails and its embedding model id), copies it to OUT and adds N assets spread over 20 years:
a location each (/synthetic/YYYY/MM/img_N.jpg), capture dates, 1 % videos, a thumbnail (the seed's
real WebP thumbnails, in turn) for the first THUMBS assets by date and a random unit embedding of
the seed model's size for the first EMBED. Written in one transaction; prints what it made.

  bench/serve_synth.py SEED OUT N [THUMBS] [EMBED]
  bench/serve_synth.py --places OUT    # adds GPS positions to a catalog made before they were

60 % of the synthetic assets have a GPS position, spread around 40 places (a normal of 0.3
degrees each), as a phone library's would be.
"""
import os
import random
import shutil
import sqlite3
import struct
import sys
import time

import numpy as np


def places(db):
    """GPS for 60 % of the synthetic assets (those under /synthetic/), around 40 places."""
    rnd = random.Random(23)
    centres = [(rnd.uniform(-50, 65), rnd.uniform(-170, 175)) for _ in range(40)]
    rows = []
    for (aid,) in db.execute("SELECT asset_id FROM locations WHERE path >= CAST('/synthetic/' AS BLOB) "
                             "AND path < CAST('/synthetic0' AS BLOB)"):
        if rnd.random() < 0.6:
            lat, lon = rnd.choice(centres)
            rows.append((max(-90.0, min(90.0, rnd.gauss(lat, 0.3))), max(-180.0, min(180.0, rnd.gauss(lon, 0.3))),
                         aid))
    db.execute("BEGIN")
    db.executemany("UPDATE metadata SET gps_latitude=?, gps_longitude=? WHERE asset_id=?", rows)
    db.execute("COMMIT")
    return len(rows)


def main():
    if sys.argv[1] == "--places":
        db = sqlite3.connect(sys.argv[2])
        if db.execute("SELECT 1 FROM metadata WHERE gps_latitude IS NOT NULL AND asset_id IN "
                      "(SELECT asset_id FROM locations WHERE path >= CAST('/synthetic/' AS BLOB) "
                      "AND path < CAST('/synthetic0' AS BLOB)) LIMIT 1").fetchone() is None:
            print(f"{sys.argv[2]}: {places(db)} positions added")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return
    seed, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    thumbs = int(sys.argv[4]) if len(sys.argv) > 4 else n
    embed = int(sys.argv[5]) if len(sys.argv) > 5 else n
    t0 = time.time()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(out + suffix):
            os.remove(out + suffix)
    src = sqlite3.connect(seed)
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    shutil.copy(seed, out)
    db = sqlite3.connect(out)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    blobs = [r for r in db.execute("SELECT producer, width, height, webp FROM thumbnails")]
    model, dim = db.execute("SELECT model, dim FROM embeddings LIMIT 1").fetchone()
    rnd = random.Random(19)
    rng = np.random.default_rng(19)
    base = db.execute("SELECT COALESCE(MAX(id), 0) FROM assets").fetchone()[0]
    now = int(time.time())
    db.execute("BEGIN")
    # Newest first in the timeline: asset k (k = 0 newest) is dated back from 2026 so that the
    # first THUMBS / EMBED assets by date are the ones with thumbnails and embeddings.
    span = 20 * 365 * 86400
    end = 1_790_000_000  # 2026-09
    for k in range(n):
        aid = base + 1 + k
        when = end - int(span * k / n) - rnd.randrange(60)
        tm = time.gmtime(when)
        video = rnd.random() < 0.01
        db.execute("INSERT INTO assets(id, hash, size, format, width, height, colorspace, first_seen, kind) "
                   "VALUES(?,?,?,?,?,?,?,?,?)",
                   (aid, rnd.randbytes(16), rnd.randrange(200_000, 8_000_000), "h264" if video else "jpeg", 4032,
                    3024, "srgb", now, "video" if video else "photo"))
        path = f"/synthetic/{tm.tm_year}/{tm.tm_mon:02}/img_{aid}.{'mp4' if video else 'jpg'}"
        db.execute("INSERT INTO locations(path, size, mtime_ns, inode, device, asset_id, state, updated_at) "
                   "VALUES(?,?,?,?,?,?,'ok',?)", (path.encode(), 1000, when * 10**9, aid, 1, aid, now))
        db.execute("INSERT INTO metadata(asset_id, producer, captured_at, camera_make, camera_model) "
                   "VALUES(?,?,?,?,?)",
                   (aid, "exif", time.strftime("%Y-%m-%dT%H:%M:%S", tm), rnd.choice(["Canon", "NIKON", "Apple"]),
                    rnd.choice(["EOS R5", "D750", "iPhone 15"])))
        if k < thumbs:
            producer, w, h, webp = blobs[k % len(blobs)]
            db.execute("INSERT INTO thumbnails VALUES(?,?,?,?,?)", (aid, producer, w, h, webp))
        if k < embed:
            v = rng.standard_normal(dim).astype(np.float32)
            v /= np.linalg.norm(v)
            db.execute("INSERT INTO embeddings VALUES(?,?,?,?)", (aid, model, dim, v.tobytes()))
    db.execute("COMMIT")
    places(db)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"{out}: {n} assets ({thumbs} with thumbnails, {embed} with {dim}-d embeddings of {model}) "
          f"in {time.time() - t0:.0f} s, {os.path.getsize(out) / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
