#!/usr/bin/env python3
"""tb_oracle.py RUN_DIR: check a run's metrics.jsonl and TensorBoard event files with
independent readers (driven by test_metrics_tb.c; not a test by itself).

- tensorboard's EventAccumulator must return exactly the scalars of metrics.jsonl:
  same tags ("<kind>/<key>"), steps, values (to fp32; null = NaN) and wall times.
- every event file must parse with a TFRecord reader written here, with its own bitwise
  CRC-32C, and every record with tensorboard's Event protobuf.
- RUN_DIR/crc_vectors.txt ("hex crc" lines written by the C side) must match both this
  CRC and tensorboard's.
- corrupting a record's payload or length must be reported by tensorboard's record
  reader (DataLossError), and the accumulator must not return the altered value.
Exit 0 ok, 1 mismatch, 77 tensorboard missing.
"""
import json
import math
import os
import shutil
import struct
import sys
import tempfile

try:
    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors as tb_errors
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as tb_pw
except ImportError as e:
    print(f"SKIP: tensorboard not importable ({e}); pip install -r tests/requirements.txt")
    sys.exit(77)

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)


def crc32c(data):
    """Bitwise CRC-32C, reflected polynomial 0x82F63B78 (RFC 3720)."""
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path):
    raw = open(path, "rb").read()
    off, out = 0, []
    while off < len(raw):
        (n,) = struct.unpack_from("<Q", raw, off)
        (hc,) = struct.unpack_from("<I", raw, off + 8)
        check(hc == masked(raw[off : off + 8]), f"{path}@{off}: length crc")
        data = raw[off + 12 : off + 12 + n]
        (dc,) = struct.unpack_from("<I", raw, off + 12 + n)
        check(dc == masked(data), f"{path}@{off}: data crc")
        out.append((off, n, data))
        off += 16 + n
    check(off == len(raw), f"{path}: trailing bytes")
    return out


def main():
    run = sys.argv[1]
    tbdir = os.path.join(run, "tb")
    files = sorted(f for f in os.listdir(tbdir) if "tfevents" in f)
    check(len(files) == int(sys.argv[2]) if len(sys.argv) > 2 else len(files) >= 1,
          f"event file count {len(files)}")

    # 1. expected scalars from metrics.jsonl
    expect = {}
    for line in open(os.path.join(run, "metrics.jsonl")):
        o = json.loads(line)
        if o["kind"] == "event":
            continue
        for k, v in o.items():
            if k in ("step", "kind", "time"):
                continue
            expect.setdefault(f'{o["kind"]}/{k}', []).append(
                (o["step"], float("nan") if v is None else v, o["time"]))

    # 2. tensorboard's accumulator over the whole tb/ directory
    acc = ea.EventAccumulator(tbdir, size_guidance={ea.SCALARS: 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    check(tags == sorted(expect), f"tags {tags} != {sorted(expect)}")
    nvals = 0
    for tag in expect:
        got = acc.Scalars(tag) if tag in tags else []
        want = sorted(expect[tag])
        check(len(got) == len(want), f"{tag}: {len(got)} points, want {len(want)}")
        for g, (s, v, t) in zip(got, want):
            same = (math.isnan(v) and math.isnan(g.value)) or np.float32(v) == np.float32(g.value)
            check(g.step == s and same and g.wall_time == t,
                  f"{tag}: got ({g.step}, {g.value}, {g.wall_time}) want ({s}, {v}, {t})")
            nvals += 1

    # 3. framing + protobuf of every file, first record = file_version
    nrec = 0
    for i, f in enumerate(files):
        recs = read_records(os.path.join(tbdir, f))
        evs = [event_pb2.Event.FromString(d) for _, _, d in recs]
        nrec += len(evs)
        check(evs and evs[0].file_version == "brain.Event:2", f"{f}: first record file_version")
        if i > 0:  # a resumed session announces itself for TensorBoard's purge
            check(len(evs) > 1 and evs[1].session_log.status == event_pb2.SessionLog.START,
                  f"{f}: second record is not SessionLog START")

    # 4. CRC vectors from the C side
    nvec = 0
    vec_path = os.path.join(run, "crc_vectors.txt")
    if os.path.exists(vec_path):
        for line in open(vec_path):
            hx, c = line.split()
            data = bytes.fromhex(hx) if hx != "-" else b""
            check(int(c, 16) == crc32c(data) == tb_pw.crc32c(data), f"crc of {hx[:16]}...")
            nvec += 1

    # 5. corruption: flip the last payload byte (the float of the record's last value)
    #    of the third record, and separately a length byte of the fourth.
    src = os.path.join(tbdir, files[0])
    recs = read_records(src)
    tmp = tempfile.mkdtemp(prefix="tb_corrupt")
    try:
        for case, (rec_i, pos_of) in {"payload": (2, lambda o, n: o + 12 + n - 1),
                                      "length": (3, lambda o, n: o)}.items():
            raw = bytearray(open(src, "rb").read())
            off, n, data = recs[rec_i]
            raw[pos_of(off, n)] ^= 0x40
            bad = os.path.join(tmp, case, files[0])
            os.makedirs(os.path.dirname(bad))
            open(bad, "wb").write(raw)
            reader = tb_pw.PyRecordReader_New(bad)
            seen, err = 0, None
            try:
                while True:
                    reader.GetNext()
                    seen += 1
            except tb_errors.DataLossError as e:
                err = str(e)
            except tb_errors.OutOfRangeError:
                pass
            check(err is not None and "crc32" in err and seen == rec_i,
                  f"{case} corruption: reader read {seen} records, error {err!r}")
            if case == "payload":
                ev = event_pb2.Event.FromString(data)
                tag = ev.summary.value[-1].tag
                acc2 = ea.EventAccumulator(os.path.dirname(bad), size_guidance={ea.SCALARS: 0})
                acc2.Reload()
                pts = acc2.Scalars(tag) if tag in acc2.Tags()["scalars"] else []
                check(all(p.step < ev.step for p in pts),
                      f"accumulator returned data at or after the corrupt record ({tag})")
    finally:
        shutil.rmtree(tmp)

    print(f"tb_oracle: {len(files)} files, {nrec} records, {len(tags)} tags, {nvals} scalars, "
          f"{nvec} crc vectors, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
