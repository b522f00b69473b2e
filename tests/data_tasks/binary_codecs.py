import base64
import csv
import gzip
import hashlib
import hmac
import io
import json
import os
import struct
import tempfile
import unittest
import zlib


def task_func(records, path):
    """Serialise records as gzipped JSON lines, return digest, base64 of packed header, CSV text."""
    payload = "\n".join(json.dumps(r, sort_keys=True) for r in records).encode("utf-8")
    with gzip.open(path, "wb") as fh:
        fh.write(payload)
    digest = hashlib.sha256(payload).hexdigest()
    md5 = hashlib.md5(payload).hexdigest()
    header = struct.pack("<4sIf", b"RECS", len(records), 1.5)
    crc = zlib.crc32(payload)
    sig = hmac.new(b"secret", payload, hashlib.sha256).hexdigest()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=sorted(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return digest, md5, base64.b64encode(header).decode(), crc, sig, out.getvalue()


class TestCases(unittest.TestCase):
    records = [{"id": 1, "name": "Zoë"}, {"id": 2, "name": "Ann, Jr."}]

    def setUp(self):
        self.path = os.path.join(tempfile.mkdtemp(), "data.jsonl.gz")

    def test_roundtrip(self):
        digest, md5, header, crc, sig, text = task_func(self.records, self.path)
        with gzip.open(self.path, "rt", encoding="utf-8") as fh:
            back = [json.loads(line) for line in fh]
        self.assertEqual(back, self.records)
        raw = gzip.decompress(open(self.path, "rb").read())
        self.assertEqual(hashlib.sha256(raw).hexdigest(), digest)
        self.assertEqual(len(md5), 32)
        self.assertEqual(zlib.crc32(raw), crc)
        self.assertEqual(len(sig), 64)
        magic, count, ver = struct.unpack("<4sIf", base64.b64decode(header))
        self.assertEqual((magic, count, ver), (b"RECS", 2, 1.5))
        rows = list(csv.DictReader(io.StringIO(text)))
        self.assertEqual(rows[1]["name"], "Ann, Jr.")
        self.assertIn('"Ann, Jr."', text)

    def test_compress_levels(self):
        data = b"abc" * 1000
        self.assertLess(len(zlib.compress(data, 9)), 100)
        self.assertEqual(zlib.decompress(zlib.compress(data)), data)
        self.assertEqual(hashlib.blake2b(b"x", digest_size=8).hexdigest().__len__(), 16)
        self.assertEqual(base64.urlsafe_b64decode(base64.urlsafe_b64encode(b"\xff\xfe")), b"\xff\xfe")


if __name__ == "__main__":
    unittest.main()
