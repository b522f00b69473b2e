"""/v1/tools: the agent tools (app/tools.py) for function-calling loops.

``GET /v1/tools`` lists them in OpenAI's function-calling format; ``POST
/v1/tools/{name}`` runs one call with the arguments as the body, as the caller,
and answers with the text to hand back to the model.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.auth import CallerDep
from app.deps import ServicesDep
from app.errors import CONTROL_PLANE_ERRORS
from app.schemas import ErrorResponse, ToolCallOut, ToolOut
from app.tools import TOOLS, call_tool

router = APIRouter(prefix="/v1/tools", tags=["tools"])


@router.get("", response_model=list[ToolOut], responses={401: CONTROL_PLANE_ERRORS[401]})
def list_tools(_: CallerDep) -> list[dict[str, Any]]:
    """execute_code, deploy_worker, invoke_worker and the session tools, with their
    arguments' JSON Schemas."""
    return [tool.openai() for tool in TOOLS]


@router.post(
    "/{name}",
    response_model=ToolCallOut,
    responses={
        401: CONTROL_PLANE_ERRORS[401],
        404: {"model": ErrorResponse, "description": "No tool of that name"},
    },
)
async def run_tool(
    name: str,
    arguments: Annotated[dict[str, Any], Body(description="The tool's arguments")],
    caller: CallerDep,
    services: ServicesDep,
) -> ToolCallOut:
    """Run one tool call. A refused call (bad arguments, a key of another namespace, an
    unknown worker, ...) is a 200 with ``is_error`` and the message, for the model to read.
    """
    output = await call_tool(services, caller, name, arguments)
    return ToolCallOut(tool=name, is_error=output.is_error, text=output.text, result=output.result)
