"""Bad input gets a 4xx with the JSON error shape naming what to fix; nothing runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("missing-code", {}, "code"),
    ("code-not-a-string", {"code": 123}, "code"),
    ("unknown-field", {"code": "1", "surprise": True}, "surprise"),
    ("cpu-over-max", {"code": "1", "limits": {"cpu_ms": 10**9}}, "limits.cpu_ms"),
    ("cpu-zero", {"code": "1", "limits": {"cpu_ms": 0}}, "limits.cpu_ms"),
    ("memory-too-small", {"code": "1", "limits": {"memory_mb": 8}}, "limits.memory_mb"),
    ("memory-over-max", {"code": "1", "limits": {"memory_mb": 10**6}}, "limits.memory_mb"),
    ("wall-not-int", {"code": "1", "limits": {"wall_ms": "soon"}}, "limits.wall_ms"),
    ("unknown-limit", {"code": "1", "limits": {"gpu_ms": 1}}, "limits.gpu_ms"),
    ("host-with-scheme", {"code": "1", "allowed_hosts": ["http://x.com"]}, "allowed_hosts"),
    ("host-with-path", {"code": "1", "allowed_hosts": ["x.com/a"]}, "allowed_hosts"),
    ("bare-wildcard", {"code": "1", "allowed_hosts": ["*"]}, "allowed_hosts"),
    ("hosts-not-a-list", {"code": "1", "allowed_hosts": "x.com"}, "allowed_hosts"),
    ("file-dotdot", {"code": "1", "files": {"../x": "a"}}, "files.../x"),
    ("file-absolute", {"code": "1", "files": {"/etc/x": "a"}}, "files./etc/x"),
    (
        "file-bad-base64",
        {"code": "1", "files": {"f": {"content": "%%%", "encoding": "base64"}}},
        "files.f",
    ),
    ("env-bad-name", {"code": "1", "env": {"1BAD": "x"}}, "env.1BAD"),
    ("env-not-string", {"code": "1", "env": {"A": 1}}, "env.A"),
    ("unknown-runtime", {"code": "1", "runtime": "cpython-native"}, "runtime"),
    ("nul-in-code", {"code": "print(1)\x00"}, "code"),
    ("code-too-large", {"code": "#" * (1024 * 1024 + 1)}, "code"),
    ("stream-not-bool", {"code": "1", "stream": "maybe"}, "stream"),
    ("body-is-a-list", [1, 2], "body"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in BAD_BODIES], ids=[name for name, _, _ in BAD_BODIES]
)
def test_bad_request_names_the_field(client: httpx.Client, body: Any, field: str) -> None:
    response = client.post("/v1/execute", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"]
    assert field in [d["field"] for d in error["details"]], error


def test_body_that_is_not_json(client: httpx.Client) -> None:
    response = client.post(
        "/v1/execute", content=b"print(1)", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_body_over_the_size_limit_is_refused_before_it_is_read(client: httpx.Client) -> None:
    big = b'{"code": "' + b"#" * (33 * 1024 * 1024) + b'"}'
    response = client.post("/v1/execute", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "SANDLOT_MAX_REQUEST_BYTES" in response.json()["error"]["message"]


def test_chunked_body_over_the_size_limit_is_refused(client: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'{"code": "'
        for _ in range(40):
            yield b"#" * (1024 * 1024)
        yield b'"}'

    response = client.post(
        "/v1/execute", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/execute", 405, "method_not_allowed"),
        ("GET", "/v1/nothing-here", 404, "not_found"),
    ],
    ids=["wrong-method", "unknown-path"],
)
def test_routing_errors_use_the_same_shape(
    client: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_service_is_still_healthy_after_bad_input(client: httpx.Client) -> None:
    response = client.post("/v1/execute", json={"code": "'fine'"})
    assert response.json()["result"]["json"] == "fine"


def test_malformed_json_says_where(client: httpx.Client) -> None:
    response = client.post(
        "/v1/execute",
        content=b'{"code": "print(1)",, }',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "body"
    assert detail["message"].startswith("the body is not valid JSON at character 20"), detail


def test_a_form_body_is_told_to_be_json(client: httpx.Client) -> None:
    # curl -d 'code=print(1)' without a content type sends a form.
    response = client.post(
        "/v1/execute",
        content=b"code=print(1)",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "body"
    assert "content-type: application/json" in detail["message"], detail
    assert "application/x-www-form-urlencoded" in detail["message"]


@pytest.mark.parametrize("name", ["Acme", "acme_prod", "-acme", "x" * 64])
def test_a_bad_namespace_name_is_explained_in_words(client: httpx.Client, name: str) -> None:
    response = client.post("/v1/namespaces", json={"name": name})
    assert response.status_code == 422, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "name"
    assert "lowercase letters, digits and '-'" in detail["message"], detail
    assert "^[a-z]" not in response.text  # not the regex
