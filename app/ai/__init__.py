"""AI integration: prompts as data, the model client, and the generate → run → repair loop.

Only ``app/routes/generate.py`` speaks HTTP for it; nothing here knows FastAPI.
"""

from app.ai.extract import extract_code
from app.ai.generation import (
    Attempt,
    Code,
    Deployed,
    Feedback,
    Finished,
    GenerationEvent,
    GenerationStatus,
    PromptLog,
    RunEvent,
    Target,
    Token,
    Verdict,
    generate,
)
from app.ai.model import Message, ModelClient, ModelConfig, ModelError
from app.ai.prompts import PromptError, Prompts, Template

__all__ = [
    "Attempt",
    "Code",
    "Deployed",
    "Feedback",
    "Finished",
    "GenerationEvent",
    "GenerationStatus",
    "Message",
    "ModelClient",
    "ModelConfig",
    "ModelError",
    "PromptError",
    "PromptLog",
    "Prompts",
    "RunEvent",
    "Target",
    "Template",
    "Token",
    "Verdict",
    "extract_code",
    "generate",
]
