"""/v1/namespaces/{ns}/workers over HTTP: upload → build → versions → rollback → tags → delete."""

from __future__ import annotations

import json
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service

HELLO = 'from workers import Response\n\ndef on_fetch(request, env):\n    return Response("hi")\n'


@pytest.fixture
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture
def namespace(admin: httpx.Client) -> str:
    name = "w-" + secrets.token_hex(4)
    assert admin.post("/v1/namespaces", json={"name": name}).status_code == 201
    return name


def upload(client: httpx.Client, ns: str, name: str, **body: object) -> httpx.Response:
    return client.put(f"/v1/namespaces/{ns}/workers/{name}", json=body)


@pytest.mark.parametrize("runtime", ["wasmtime", "pyodide"])
def test_upload_builds_a_version_and_deploys_it(
    admin: httpx.Client, namespace: str, runtime: str
) -> None:
    response = upload(
        admin,
        namespace,
        "hello",
        modules={"main.py": HELLO, "lib/util.py": "X = 1\n"},
        runtime=runtime,
        tags=["customer-1", "free"],
        vars={"GREETING": "hi"},
        secrets={"TOKEN": "s3cret-value"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] is True and body["rebuilt"] is True
    version = body["version"]
    assert (version["number"], version["main_module"]) == (1, "main.py")
    assert len(version["sha256"]) == 64 and version["artifact_bytes"] > 0
    assert version["warnings"] == []
    worker = admin.get(f"/v1/namespaces/{namespace}/workers/hello").json()
    assert worker["runtime"] == runtime
    assert worker["modules"] == {"main.py": HELLO, "lib/util.py": "X = 1\n"}
    assert worker["secrets"] == ["TOKEN"]
    assert "s3cret-value" not in str(worker)
    assert admin.get(f"/v1/namespaces/{namespace}").json()["workers"] == 1


def test_syntax_error_names_file_and_line_and_keeps_the_old_version(
    admin: httpx.Client, namespace: str
) -> None:
    assert upload(admin, namespace, "w", modules={"main.py": HELLO}).status_code == 200
    broken = upload(admin, namespace, "w", modules={"main.py": HELLO, "bad.py": "x = 1\ny = (\n"})
    assert broken.status_code == 422
    error = broken.json()["error"]
    assert error["code"] == "build_failed"
    assert error["details"][0]["field"] == "modules.bad.py"
    assert error["details"][0]["message"].startswith("line 2")
    versions = admin.get(f"/v1/namespaces/{namespace}/workers/w/versions").json()["versions"]
    assert [v["number"] for v in versions] == [1]


def test_identical_code_is_not_rebuilt_and_rollback_works(
    admin: httpx.Client, namespace: str
) -> None:
    first = upload(admin, namespace, "w", modules={"main.py": HELLO}).json()
    second = upload(admin, namespace, "w", modules={"main.py": HELLO + "# v2\n"}).json()
    third = upload(admin, namespace, "w", modules={"main.py": HELLO}).json()
    assert third["rebuilt"] is False
    assert third["version"]["sha256"] == first["version"]["sha256"]
    assert [v["number"] for v in (first["version"], second["version"], third["version"])] == [
        1,
        2,
        3,
    ]
    rolled = admin.post(
        f"/v1/namespaces/{namespace}/workers/w/versions/{second['version']['id']}/deploy"
    )
    assert rolled.json()["version"]["number"] == 2
    detail = admin.get(f"/v1/namespaces/{namespace}/workers/w").json()
    assert detail["modules"]["main.py"].endswith("# v2\n")


def test_missing_on_fetch_is_a_warning(admin: httpx.Client, namespace: str) -> None:
    body = upload(admin, namespace, "w", modules={"main.py": "x = 1\n"}).json()
    assert "on_fetch" in body["version"]["warnings"][0]


def test_tags_filter_list_and_bulk_delete(admin: httpx.Client, namespace: str) -> None:
    for name, tags in (("a", ["paid"]), ("b", ["free"]), ("c", ["free", "eu"])):
        upload(admin, namespace, name, modules={"main.py": HELLO}, tags=tags)
    base = f"/v1/namespaces/{namespace}/workers"
    free = admin.get(base, params={"tags": "free:yes,eu:no"}).json()["workers"]
    assert [w["name"] for w in free] == ["b"]
    page = admin.get(base, params={"limit": 2}).json()
    assert [w["name"] for w in page["workers"]] == ["a", "b"] and page["next_cursor"] == "b"
    retagged = admin.put(f"{base}/a/tags", json={"tags": ["free"]}).json()
    assert retagged["tags"] == ["free"]
    deleted = admin.delete(base, params={"tags": "free:yes"}).json()["deleted"]
    assert deleted == ["a", "b", "c"]
    assert admin.get(base).json()["workers"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"modules": {}}, "modules"),
        ({"modules": {"../x.py": "1"}}, "modules.../x.py"),
        ({"modules": {"main.py": "1"}, "main_module": "app.py"}, "main_module"),
        ({"modules": {"main.py": "1"}, "tags": [str(i) for i in range(9)]}, "tags"),
        ({"modules": {"main.py": "1"}, "tags": ["no spaces"]}, "tags[0]"),
        ({"modules": {"main.py": "1"}, "secrets": {"1X": "v"}}, "secrets.1X"),
        (
            {"modules": {"main.py": "1"}, "requirements": ["no-such-pkg"], "runtime": "wasmtime"},
            "requirements",
        ),
        ({"modules": {"main.py": "1"}, "limits": {"wall_ms": 10**9}}, "limits.wall_ms"),
    ],
    ids=[
        "no-modules",
        "bad-path",
        "no-main",
        "too-many-tags",
        "bad-tag",
        "bad-secret-name",
        "requirement-not-installed",
        "limit-over-max",
    ],
)
def test_bad_uploads_name_the_field(
    admin: httpx.Client, namespace: str, body: dict[str, object], field: str
) -> None:
    response = upload(admin, namespace, "w", **body)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_unknown_worker_and_namespace_are_404(admin: httpx.Client, namespace: str) -> None:
    assert admin.get(f"/v1/namespaces/{namespace}/workers/nope").status_code == 404
    missing = upload(admin, "no-such-ns", "w", modules={"main.py": HELLO})
    assert missing.status_code == 404


def test_a_namespace_key_cannot_touch_another_namespaces_workers(
    admin: httpx.Client, namespace: str, service: Service
) -> None:
    admin.post("/v1/namespaces", json={"name": "w-other"})
    key = admin.post("/v1/namespaces/w-other/keys", json={}).json()["key"]
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as other:
        assert upload(other, namespace, "w", modules={"main.py": HELLO}).status_code == 403
        assert upload(other, "w-other", "w", modules={"main.py": HELLO}).status_code == 200


def test_multipart_upload_takes_modules_as_parts(
    admin: httpx.Client, namespace: str, service: Service
) -> None:
    metadata = {"main_module": "shop.py", "vars": {"WHO": "form"}, "tags": ["multipart"]}
    response = admin.put(
        f"/v1/namespaces/{namespace}/workers/form",
        files=[
            ("metadata", (None, json.dumps(metadata), "application/json")),
            (
                "shop.py",
                (
                    "shop.py",
                    b"from workers import Response\nfrom lib.util import X\n\n"
                    b"def on_fetch(request, env):\n    return Response(f'{env.WHO} {X}')\n",
                    "text/x-python",
                ),
            ),
            ("lib/util.py", ("util.py", b"X = 42\n", "text/x-python")),
        ],
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"]["main_module"] == "shop.py"
    assert response.json()["worker"]["tags"] == ["multipart"]
    worker = admin.get(f"/v1/namespaces/{namespace}/workers/form").json()
    assert sorted(worker["modules"]) == ["lib/util.py", "shop.py"]
    reply = httpx.get(f"{service.url}/dispatch/{namespace}/form/", timeout=60)
    assert reply.text == "form 42"
    # The same code as JSON is the same artifact: no rebuild.
    again = upload(
        admin,
        namespace,
        "form",
        modules=worker["modules"],
        main_module="shop.py",
        vars={"WHO": "j"},
    )
    assert again.json()["rebuilt"] is False
    assert again.json()["version"]["sha256"] == response.json()["version"]["sha256"]


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ([("metadata", (None, "{not json", "application/json"))], "metadata"),
        ([("metadata", (None, "[1]", "application/json"))], "metadata"),
        ([("metadata", (None, '{"main_module": "main.py"}', "application/json"))], "modules"),
        ([("main.py", ("main.py", b"\xff\xfe", "text/x-python"))], "modules.main.py"),
        ([("main.py", (None, "x = 1")), ("main.py", (None, "x = 2"))], "modules.main.py"),
        (
            [
                ("metadata", (None, '{"runtime": "cobol"}', "application/json")),
                ("main.py", ("main.py", b"x = 1\n", "text/x-python")),
            ],
            "runtime",
        ),
        (
            [
                ("metadata", (None, '{"modules": {}}', "application/json")),
                ("main.py", ("main.py", b"x = 1\n", "text/x-python")),
            ],
            "metadata",
        ),
        ([("bad path.py", ("x.py", b"x = 1\n", "text/x-python"))], "modules.bad path.py"),
    ],
    ids=[
        "metadata-not-json",
        "metadata-not-object",
        "no-modules",
        "not-utf8",
        "duplicate",
        "bad-runtime",
        "modules-in-metadata",
        "bad-path",
    ],
)
def test_bad_multipart_uploads_name_the_part(
    admin: httpx.Client, namespace: str, parts: list[tuple[str, object]], field: str
) -> None:
    response = admin.put(f"/v1/namespaces/{namespace}/workers/w", files=parts)  # type: ignore[arg-type]
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_other_content_types_are_415_and_bad_json_422(admin: httpx.Client, namespace: str) -> None:
    path = f"/v1/namespaces/{namespace}/workers/w"
    text = admin.put(path, content=b"x = 1", headers={"content-type": "text/x-python"})
    assert text.status_code == 415
    assert "multipart/form-data" in text.json()["error"]["message"]
    broken = admin.put(path, content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "invalid_request"


def test_openapi_describes_both_upload_forms(admin: httpx.Client) -> None:
    document = admin.get("/openapi.json").json()
    body = document["paths"]["/v1/namespaces/{namespace}/workers/{name}"]["put"]["requestBody"]
    assert set(body["content"]) == {"application/json", "multipart/form-data"}
    schema = body["content"]["application/json"]["schema"]
    assert "modules" in schema["required"]
    ref = schema["properties"]["limits"]["$ref"]
    assert ref.removeprefix("#/components/schemas/") in document["components"]["schemas"]


@pytest.mark.parametrize("runtime", ["wasmtime", "pyodide"])
@pytest.mark.parametrize("path", ["workers.py", "sandlot/__init__.py", "json.py", "os/path.py"])
def test_modules_that_the_runtime_already_imported_are_refused(
    admin: httpx.Client, namespace: str, runtime: str, path: str
) -> None:
    modules = {"main.py": HELLO, path: "X = 1\n"}
    response = upload(admin, namespace, "w", modules=modules, runtime=runtime)
    assert response.status_code == 422, response.text
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == f"modules.{path}"
    assert "rename it" in detail["message"]


# Issue 11, #10 and #13: storage is bounded, and says nothing of other namespaces.


def _stored(service: Service) -> set[str]:
    return {path.name for path in (service.data_dir / "artifacts").glob("*/*")}


def test_old_versions_and_their_files_are_dropped(
    admin: httpx.Client, service: Service, namespace: str
) -> None:
    """Every version was kept forever: 25 uploads keep the newest 20 (the deployed one among
    them) and delete the artifacts of the other 5."""
    uploads = [
        upload(admin, namespace, "w", modules={"main.py": HELLO + f"# {n}\n"}).json()
        for n in range(25)
    ]
    kept = admin.get(f"/v1/namespaces/{namespace}/workers/w/versions").json()["versions"]
    assert [v["number"] for v in kept] == list(range(6, 26))
    assert admin.get(f"/v1/namespaces/{namespace}/workers/w").json()["version"]["number"] == 25
    shas = [u["version"]["sha256"] for u in uploads]
    stored = _stored(service)
    assert not set(shas[:5]) & stored
    assert set(shas[5:]) <= stored
    used = admin.get(f"/v1/namespaces/{namespace}").json()["storage_bytes"]
    assert used == sum(u["version"]["artifact_bytes"] for u in uploads[5:])


def test_deleting_workers_and_namespaces_deletes_their_files(
    admin: httpx.Client, service: Service, namespace: str
) -> None:
    one = upload(admin, namespace, "one", modules={"main.py": HELLO + "# one\n"}).json()
    two = upload(admin, namespace, "two", modules={"main.py": HELLO + "# two\n"}, tags=["t"]).json()
    three = upload(admin, namespace, "three", modules={"main.py": HELLO + "# three\n"}).json()
    sha = {u["worker"]["name"]: u["version"]["sha256"] for u in (one, two, three)}
    assert set(sha.values()) <= _stored(service)
    assert admin.delete(f"/v1/namespaces/{namespace}/workers/one").status_code == 204
    assert sha["one"] not in _stored(service)
    assert admin.delete(f"/v1/namespaces/{namespace}/workers?tags=t:yes").status_code == 200
    assert sha["two"] not in _stored(service)
    assert admin.delete(f"/v1/namespaces/{namespace}").status_code == 409  # it has "three"
    assert admin.delete(f"/v1/namespaces/{namespace}?force=true").status_code == 204
    assert sha["three"] not in _stored(service)


def test_an_upload_over_the_storage_quota_is_a_413(admin: httpx.Client) -> None:
    namespace = "q-" + secrets.token_hex(4)
    made = admin.post("/v1/namespaces", json={"name": namespace, "storage_mb": 2})
    assert made.status_code == 201 and made.json()["storage_mb"] == 2
    # About 1.3 MiB of artifact each (the source and its bytecode).
    big = HELLO + f"DATA = {'x' * 600_000!r}\n"
    first = upload(admin, namespace, "a", modules={"main.py": big})
    assert first.status_code == 200, first.text
    second = upload(admin, namespace, "b", modules={"main.py": big + "# other\n"})
    assert second.status_code == 413, second.text
    error = second.json()["error"]
    assert error["code"] == "storage_quota_exceeded"
    used = first.json()["version"]["artifact_bytes"]
    assert "2.0 MiB storage quota" in error["message"] and f"({used} bytes)" in error["message"]
    assert "storage_mb" in error["message"]
    # Nothing was stored: the namespace still uses what the first upload took.
    assert admin.get(f"/v1/namespaces/{namespace}").json()["storage_bytes"] == used
    assert admin.get(f"/v1/namespaces/{namespace}/workers/b").status_code == 404


def test_rebuilt_says_nothing_of_other_namespaces(admin: httpx.Client, namespace: str) -> None:
    """'rebuilt: false' told a tenant that another tenant had uploaded identical code."""
    code = HELLO + f"# only two namespaces have this: {secrets.token_hex(8)}\n"
    assert upload(admin, namespace, "w", modules={"main.py": code}).json()["rebuilt"] is True
    other = "w-" + secrets.token_hex(4)
    assert admin.post("/v1/namespaces", json={"name": other}).status_code == 201
    theirs = upload(admin, other, "w", modules={"main.py": code}).json()
    assert theirs["rebuilt"] is True
    # Within one namespace, identical code is still recognised.
    assert upload(admin, other, "w2", modules={"main.py": code}).json()["rebuilt"] is False


SECRET_ECHO = """
from workers import Response

def on_fetch(request, env):
    return Response(env.TOKEN)
"""


def test_data_at_rest_is_private_and_secrets_are_sealed(tmp_path: Path) -> None:
    """sandlot.db was mode 0644 with worker secrets in clear; an older install's looser
    data dir and database are tightened at start-up."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "sandlot.db").touch(mode=0o644)
    (data / "sandlot.db").chmod(0o644)
    service = Service(data, pool_size="1", pyodide_enabled="false", build_on_start="false")
    token = "tok-" + secrets.token_hex(16)
    try:
        with service.client() as admin:
            assert admin.post("/v1/namespaces", json={"name": "vault"}).status_code == 201
            made = upload(
                admin, "vault", "w", modules={"main.py": SECRET_ECHO}, secrets={"TOKEN": token}
            )
            assert made.status_code == 200, made.text
            # The worker still gets the value.
            assert admin.get(f"{service.url}/dispatch/vault/w/").text == token
    finally:
        service.close()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("sandlot.db", "secrets-key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    stored = b"".join(path.read_bytes() for path in data.glob("sandlot.db*"))
    assert b"TOKEN" in stored  # the name is there: the check reads the right file
    assert token.encode() not in stored
