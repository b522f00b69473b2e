"""Wire models of GET /v1/namespaces/{ns}/usage: what a namespace used, per UTC day."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UsageCounts(BaseModel):
    """What was used: every run (dispatches included), dispatches, guest CPU and wall time,
    outbound requests (each redirect hop is one) and the bytes the egress gate sent and
    received for them."""

    runs: int
    dispatches: int
    cpu_ms: float
    wall_ms: float
    subrequests: int
    egress_bytes: int = Field(description="egress_sent_bytes + egress_received_bytes")
    egress_sent_bytes: int
    egress_received_bytes: int


class UsageDay(UsageCounts):
    day: str = Field(description="The UTC day, YYYY-MM-DD")


class NamespaceUsage(BaseModel):
    namespace: str
    from_: str = Field(alias="from", description="The first day asked for (UTC), YYYY-MM-DD")
    to: str = Field(description="The last day asked for (UTC), inclusive")
    days: list[UsageDay] = Field(description="Days with any usage, oldest first")
    total: UsageCounts

    model_config = {"populate_by_name": True}
