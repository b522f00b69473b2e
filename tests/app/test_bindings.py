"""A worker's bindings over HTTP: kept across uploads, secrets one at a time, versions listed.

A re-upload without vars or secrets used to wipe them (the next request was a 500); the
versions list was a bare array without the deployed one marked, and only ``ver_`` ids
could be deployed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Service

ECHO = """
from workers import Response

def on_fetch(request, env):
    names = ",".join(sorted(vars(env)))
    return Response(f"{names}|{getattr(env, 'GREETING', '')}|{getattr(env, 'TOKEN', '')}")
"""


@pytest.fixture
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture
def namespace(admin: httpx.Client) -> str:
    name = "b-" + secrets.token_hex(4)
    assert admin.post("/v1/namespaces", json={"name": name}).status_code == 201
    return name


def _upload(client: httpx.Client, ns: str, **body: object) -> httpx.Response:
    return client.put(f"/v1/namespaces/{ns}/workers/w", json=body)


def _env(client: httpx.Client, ns: str) -> str:
    response = client.get(f"/dispatch/{ns}/w/")
    assert response.status_code == 200, response.text
    return response.text


def test_an_upload_without_bindings_keeps_them(admin: httpx.Client, namespace: str) -> None:
    first = _upload(
        admin,
        namespace,
        modules={"main.py": ECHO},
        vars={"GREETING": "hi"},
        secrets={"TOKEN": "t0p"},
    )
    assert first.status_code == 200, first.text
    assert _env(admin, namespace) == "GREETING,TOKEN|hi|t0p"
    # New code, no vars and no secrets in the upload: both stay.
    again = _upload(admin, namespace, modules={"main.py": ECHO + "# v2\n"})
    assert again.status_code == 200, again.text
    assert again.json()["worker"]["vars"] == {"GREETING": "hi"}
    assert again.json()["worker"]["secrets"] == ["TOKEN"]
    assert _env(admin, namespace) == "GREETING,TOKEN|hi|t0p"
    # The same as a multipart form without vars and secrets in its metadata.
    form = admin.put(
        f"/v1/namespaces/{namespace}/workers/w",
        files={
            "metadata": (None, '{"tags": ["form"]}', "application/json"),
            "main.py": ("main.py", ECHO + "# v3\n"),
        },
    )
    assert form.status_code == 200, form.text
    assert _env(admin, namespace) == "GREETING,TOKEN|hi|t0p"


def test_sending_bindings_replaces_that_set_whole(admin: httpx.Client, namespace: str) -> None:
    _upload(
        admin, namespace, modules={"main.py": ECHO}, vars={"GREETING": "hi"}, secrets={"TOKEN": "a"}
    )
    # vars sent: they replace the old vars; secrets not sent: kept.
    replaced = _upload(admin, namespace, modules={"main.py": ECHO}, vars={"OTHER": "x"})
    assert replaced.json()["worker"]["vars"] == {"OTHER": "x"}
    assert _env(admin, namespace) == "OTHER,TOKEN||a"
    # {} clears a set.
    cleared = _upload(admin, namespace, modules={"main.py": ECHO}, vars={}, secrets={})
    body = cleared.json()["worker"]
    assert (body["vars"], body["secrets"]) == ({}, [])
    assert _env(admin, namespace) == "||"


def test_secrets_have_their_own_endpoints(
    admin: httpx.Client, namespace: str, service: Service
) -> None:
    _upload(admin, namespace, modules={"main.py": ECHO}, vars={"GREETING": "hi"})
    base = f"/v1/namespaces/{namespace}/workers/w/secrets"
    value = "v-" + secrets.token_hex(8)
    made = admin.put(f"{base}/TOKEN", json={"value": value})
    assert made.status_code == 201, made.text
    assert made.json() == {"name": "TOKEN", "created": True}
    # The next request sees it; no new version was made.
    assert _env(admin, namespace) == f"GREETING,TOKEN|hi|{value}"
    listed = admin.get(f"/v1/namespaces/{namespace}/workers/w/versions").json()
    assert [v["number"] for v in listed["versions"]] == [1]

    changed = admin.put(f"{base}/TOKEN", json={"value": "second"})
    assert changed.status_code == 200 and changed.json()["created"] is False
    assert _env(admin, namespace) == "GREETING,TOKEN|hi|second"
    assert admin.put(f"{base}/OTHER", json={"value": "o"}).status_code == 201

    names = admin.get(base)
    assert names.status_code == 200
    assert names.json() == {"secrets": ["OTHER", "TOKEN"]}
    assert "second" not in names.text
    assert "second" not in admin.get(f"/v1/namespaces/{namespace}/workers/w").text

    assert admin.delete(f"{base}/OTHER").status_code == 204
    assert admin.get(base).json() == {"secrets": ["TOKEN"]}
    gone = admin.delete(f"{base}/OTHER")
    assert gone.status_code == 404
    assert "no secret 'OTHER'" in gone.json()["error"]["message"]
    # A code upload leaves the secret set by the endpoint alone.
    _upload(admin, namespace, modules={"main.py": ECHO + "# v2\n"})
    assert _env(admin, namespace) == "GREETING,TOKEN|hi|second"


@pytest.mark.parametrize(
    ("path", "status", "field_or_message"),
    [
        ("workers/w/secrets/1BAD", 422, "secret"),
        ("workers/w/secrets/has-dash", 422, "secret"),
        ("workers/nope/secrets/TOKEN", 404, "worker 'nope' was not found"),
    ],
    ids=["starts-with-digit", "dash", "unknown-worker"],
)
def test_bad_secret_calls_say_what_to_fix(
    admin: httpx.Client, namespace: str, path: str, status: int, field_or_message: str
) -> None:
    _upload(admin, namespace, modules={"main.py": ECHO})
    response = admin.put(f"/v1/namespaces/{namespace}/{path}", json={"value": "x"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if status == 422:
        assert error["details"][0]["field"] == field_or_message
    else:
        assert field_or_message in error["message"]
    # A body without a value names the field.
    missing = admin.put(f"/v1/namespaces/{namespace}/workers/w/secrets/OK", json={})
    assert missing.status_code == 422
    assert "value" in missing.json()["error"]["details"][0]["field"]


def test_another_namespaces_key_cannot_read_or_set_secrets(
    admin: httpx.Client, namespace: str, service: Service
) -> None:
    _upload(admin, namespace, modules={"main.py": ECHO}, secrets={"TOKEN": "mine"})
    other = "b-" + secrets.token_hex(4)
    admin.post("/v1/namespaces", json={"name": other})
    key = admin.post(f"/v1/namespaces/{other}/keys", json={}).json()["key"]
    base = f"/v1/namespaces/{namespace}/workers/w/secrets"
    with httpx.Client(
        base_url=service.url, headers={"authorization": f"Bearer {key}"}, timeout=30
    ) as stranger:
        assert stranger.get(base).status_code == 403
        assert stranger.put(f"{base}/TOKEN", json={"value": "theirs"}).status_code == 403
        assert stranger.delete(f"{base}/TOKEN").status_code == 403
    with httpx.Client(base_url=service.url, timeout=30) as anonymous:
        assert anonymous.put(f"{base}/TOKEN", json={"value": "theirs"}).status_code == 401
    assert _env(admin, namespace) == "TOKEN||mine"


def test_versions_are_listed_with_the_deployed_one_and_deploy_by_number(
    admin: httpx.Client, namespace: str
) -> None:
    for n in range(3):
        made = _upload(admin, namespace, modules={"main.py": ECHO + f"# v{n + 1}\n"})
        assert made.status_code == 200, made.text
    url = f"/v1/namespaces/{namespace}/workers/w"
    listed = admin.get(f"{url}/versions").json()
    assert [(v["number"], v["deployed"]) for v in listed["versions"]] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert listed["deployed"] == listed["versions"][2]["id"]

    admin.put(f"{url}/secrets/TOKEN", json={"value": "kept"})
    rolled = admin.post(f"{url}/versions/1/deploy")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"]["number"] == 1
    assert rolled.json()["secrets"] == ["TOKEN"]  # a rollback keeps the bindings
    assert admin.get(f"{url}").json()["modules"]["main.py"].endswith("# v1\n")
    listed = admin.get(f"{url}/versions").json()
    assert [v["deployed"] for v in listed["versions"]] == [True, False, False]
    assert _env(admin, namespace) == "TOKEN||kept"
    # By id as before.
    by_id = admin.post(f"{url}/versions/{listed['versions'][2]['id']}/deploy")
    assert by_id.json()["version"]["number"] == 3

    missing = admin.post(f"{url}/versions/9/deploy")
    assert missing.status_code == 404
    assert "version '9' of worker 'w'" in missing.json()["error"]["message"]
