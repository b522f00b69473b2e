"""The body of a worker upload: JSON, or a multipart form with one part per module."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.errors import ApiError, invalid_field
from app.schemas import WorkerIn

__all__ = ["UploadBody", "upload_body", "upload_body_openapi"]

_MULTIPART_SCHEMA = {
    "type": "object",
    "description": "One part per module, named by its path (main.py, lib/util.py), and an "
    "optional 'metadata' part: a JSON object of the other upload fields",
    "properties": {"metadata": {"type": "string", "contentMediaType": "application/json"}},
    "additionalProperties": {"type": "string", "format": "binary"},
}


def upload_body_openapi() -> dict[str, Any]:
    # The models WorkerIn refers to (LimitsIn) are in the document's components already.
    schema = WorkerIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }


def _invalid(exc: ValidationError, prefix: tuple[str, ...] = ()) -> RequestValidationError:
    """Pydantic's errors as the API's 422 (fields named as in the JSON body)."""
    return RequestValidationError(
        [{**error, "loc": ("body", *prefix, *error["loc"])} for error in exc.errors()]
    )


async def upload_body(request: Request) -> WorkerIn:
    """The upload, from a JSON body or from a multipart form."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == "multipart/form-data":
        return await _from_form(request)
    if media not in ("", "application/json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"a worker upload is application/json or multipart/form-data, not {media!r}",
        )
    try:
        return WorkerIn.model_validate_json(await request.body() or b"null")
    except ValidationError as exc:
        raise _invalid(exc) from None


async def _from_form(request: Request) -> WorkerIn:
    """Modules as parts named by their path; the other fields as JSON in a 'metadata' part."""
    form = await request.form(max_files=101, max_fields=101)
    metadata: dict[str, Any] = {}
    modules: dict[str, str] = {}
    for part, value in form.multi_items():
        raw = await value.read() if isinstance(value, UploadFile) else value.encode()
        where = "metadata" if part == "metadata" else f"modules.{part}"
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise invalid_field(where, "not UTF-8 text") from None
        if part == "metadata":
            try:
                fields = json.loads(text)
            except ValueError as exc:
                raise invalid_field("metadata", f"not JSON: {exc}") from None
            if not isinstance(fields, dict) or "modules" in fields:
                raise invalid_field(
                    "metadata", "a JSON object of upload fields; send modules as parts"
                )
            metadata = fields
        elif part in modules:
            raise invalid_field(where, "sent twice")
        else:
            modules[part] = text
    await form.close()
    if not modules:
        raise invalid_field("modules", "send each module as a part named by its path")
    try:
        return WorkerIn.model_validate({**metadata, "modules": modules})
    except ValidationError as exc:
        raise _invalid(exc) from None


UploadBody = Annotated[WorkerIn, Depends(upload_body)]
