import base64
import hashlib
import hmac
import json
import unittest


def task_func(payload, secret):
    """A compact signed token: base64url(JSON).base64url(HMAC-SHA256)."""
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).rstrip(b"=")
    signature = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return (body + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def verify(token, secret):
    body, _, signature = token.encode().partition(b".")
    expected = base64.urlsafe_b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected.rstrip(b"="), signature)


class TestCases(unittest.TestCase):
    def test_roundtrip(self):
        token = task_func({"user": 7, "role": "admin"}, "s3cret")
        self.assertTrue(verify(token, "s3cret"))
        self.assertFalse(verify(token, "other"))
        body = token.split(".")[0]
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        self.assertEqual(decoded, {"role": "admin", "user": 7})


if __name__ == "__main__":
    unittest.main()
